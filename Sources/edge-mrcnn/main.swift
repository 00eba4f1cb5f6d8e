// edge-mrcnn command-line entry point; one file per subcommand lives beside this one.
#if canImport(Glibc)
import Glibc
#endif
import EdgeMRCNN

print("edge-mrcnn: under construction")
