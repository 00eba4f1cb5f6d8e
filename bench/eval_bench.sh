#!/usr/bin/env bash
# Times COCO evaluation of torchvision's shapes-val results (9739 detections, bbox + segm):
# edge-mrcnn eval (release build) vs pycocotools (COCO + loadRes + COCOeval for both IoU types,
# as one would run it; Python start-up and imports excluded). Best of N runs, CPU time (user+sys)
# and wall time. Run from the repository root after `swift build -c release`.
set -euo pipefail
S=${EDGE_MRCNN_SHARED:-../shared}
B=${B:-.build/release/edge-mrcnn}
PY=${PY:-/root/venv-ref/bin/python}
N=${N:-5}
ANN=$S/data/shapes-val/annotations.json
RES=$S/models/shapes-r50fpn/torchvision-results-shapes-val.json

echo "edge-mrcnn eval (whole process):"
for i in $(seq "$N"); do
  /usr/bin/time -f "  wall %e s  cpu %U+%S s  rss %M KB" "$B" eval --annotations "$ANN" --results "$RES" 2>&1 >/dev/null | grep -v '^evaluated' || true
done
"$B" eval --annotations "$ANN" --results "$RES" 2>&1 >/dev/null | grep '^evaluated'

echo "pycocotools (in-process, after imports):"
"$PY" - "$ANN" "$RES" "$N" <<'PYEOF'
import sys, time, io, contextlib, resource
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
ann, res, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(n):
    w0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann)
        for t in ("bbox", "segm"):
            e = COCOeval(gt, gt.loadRes(res), t); e.evaluate(); e.accumulate(); e.summarize()
    print("  wall %.2f s  cpu %.2f s" % (time.perf_counter() - w0, time.process_time() - c0))
print("  rss %d KB" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
PYEOF
