// edge-mrcnn command-line entry point. The dispatch lives in CLI.swift, one file per subcommand
// beside it; this file only runs it (so that tests can import the module without running it).
#if canImport(Glibc)
import Glibc
#endif

signal(SIGPIPE, SIG_IGN)
let status = runCLI(Array(CommandLine.arguments.dropFirst()))
fflush(stdout)
exit(status)
