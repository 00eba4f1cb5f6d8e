// Umbrella header of the CShim module (imported from Swift as `import CShim`).
#include "em_dispatch.h"
#include "em_kernels.h"
#include "em_qkernels.h"
#include "em_image.h"
#include "em_hash.h"
#include "em_peak.h"
#include "em_seeded.h"
