#!/usr/bin/env bash
# libFuzzer harnesses for every parser that reads untrusted bytes (issue 5):
#   jpeg         CShim/io/jpeg.c (em_jpeg_size_mem, em_jpeg_decode_mem)
#   pth          Zip + Pickle + TorchCheckpoint (zip and legacy .pth) + Fold.numClasses
#   safetensors  MappedTensorStore.layout + ModelConfig(metadata:)
#   coco         JSON + COCODataset / COCOResults / COCOImageIndex (+ COCOEval on results)
#   rle          RLE compressed-string decoder, bbox/area/mask, polygon rasteriser
#   http         serve: HTTP request head parser (+ route and detection form after a complete head)
#   multipart    serve: multipart/form-data parser and the detection form
#   frames       the MJPEG frame splitter of `detect -` (JPEGFrameSplitter)
# The library sources are compiled straight with swiftc -sanitize=fuzzer,address (the C with
# -fsanitize=fuzzer-no-link,address,undefined) into fuzz/.build; the normal `swift build` is not
# touched. Seeds: Tests/Fixtures/bad (the hostile-input corpus) and the small valid fixtures.
#
#   bash fuzz/run.sh                         # every harness, 1,000,000 executions each
#   bash fuzz/run.sh -runs=200000 jpeg rle   # some harnesses, any libFuzzer flags
#   bash fuzz/run.sh -max_total_time=30      # CI: 30 s per harness
# Harnesses run two at a time on 2 cores (each libFuzzer process is single-threaded; nice -n 10;
# EDGE_MRCNN_FUZZ_JOBS sets how many, default the online CPUs, at most 2), each for the full
# limit given. Prints executions and crashes per harness; exits 1 if any harness found a crash
# (the reproducer is in fuzz/.build/artifacts/<harness>/).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
B=$ROOT/fuzz/.build
ALL=(jpeg pth safetensors coco rle http multipart frames)
NCPU="$(nproc 2>/dev/null || echo 1)"
JOBS="${EDGE_MRCNN_FUZZ_JOBS:-$(( NCPU > 2 ? 2 : NCPU ))}"

FLAGS=()
NAMES=()
for a in "$@"; do
    case "$a" in
        -*) FLAGS+=("$a") ;;
        *) NAMES+=("$a") ;;
    esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=("${ALL[@]}")
have_limit=0
for f in "${FLAGS[@]+"${FLAGS[@]}"}"; do case "$f" in -runs=*|-max_total_time=*) have_limit=1 ;; esac; done
[ $have_limit = 1 ] || FLAGS+=(-runs=1000000)

mkdir -p "$B/c" "$B/lib"
echo "== building fuzz harnesses in $B"
t0=$(date +%s)
# C: the whole CShim (the Swift library links against every kernel), instrumented.
CFLAGS=(-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
        -fno-omit-frame-pointer -fno-strict-aliasing -I"$ROOT/CShim/include" -I"$ROOT/CShim")
objs=()
stale=()
while IFS= read -r src; do
    rel=${src#CShim/}
    obj="$B/c/${rel//\//_}.o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$ROOT/CShim/include" -nt "$obj" ]; then
        stale+=("$src")
    fi
    objs+=("$obj")
done < <(find CShim -name '*.c' | sort)
# (JOBS compilers at a time)
if [ ${#stale[@]} -gt 0 ]; then
    printf '%s\0' "${stale[@]}" | xargs -0 -P "$JOBS" -I{} sh -c \
        'src="$1"; shift; rel=${src#CShim/}; exec clang "$@" -c "$src" -o "'"$B"'/c/$(printf %s "$rel" | tr / _).o"' \
        _ {} "${CFLAGS[@]}" || exit 2
fi
# Swift: the library as one module (testable, so harnesses can call internal readers); whole-module
# optimisation with JOBS code-generation threads: one object per source file in $B/lib/obj.
SWIFT_SRCS=$(find "$ROOT/Sources/EdgeMRCNN" -name '*.swift' | sort)
newest=$(ls -t $SWIFT_SRCS | head -1)
if [ ! -f "$B/lib/EdgeMRCNN.stamp" ] || [ "$newest" -nt "$B/lib/EdgeMRCNN.stamp" ]; then
    rm -rf "$B/lib/obj" "$B/lib/EdgeMRCNN.stamp"; mkdir -p "$B/lib/obj"
    (cd "$B/lib/obj" && swiftc -parse-as-library -module-name EdgeMRCNN -enable-testing -O -g -wmo -num-threads "$JOBS" \
        -sanitize=fuzzer,address -I "$ROOT/CShim/include" \
        -emit-module -emit-module-path "$B/lib/EdgeMRCNN.swiftmodule" \
        -c $SWIFT_SRCS) || exit 2
    touch "$B/lib/EdgeMRCNN.stamp"
fi
LIBOBJS=("$B"/lib/obj/*.o)
build_harness() {   # build_harness NAME
    local n="$1" h="$ROOT/fuzz/harness/$1.swift"
    if [ ! -x "$B/fuzz-$n" ] || [ "$h" -nt "$B/fuzz-$n" ] || [ "$B/lib/EdgeMRCNN.stamp" -nt "$B/fuzz-$n" ]; then
        swiftc -parse-as-library -O -g -sanitize=fuzzer,address -I "$B/lib" -I "$ROOT/CShim/include" \
            "$h" "${LIBOBJS[@]}" "${objs[@]}" -ljpeg -lm -Xclang-linker -fsanitize=undefined \
            -o "$B/fuzz-$n" 2> >(grep -v "Cannot export local symbol" >&2)
    fi
}
pids=()
for n in "${NAMES[@]}"; do
    [ -f "$ROOT/fuzz/harness/$n.swift" ] || { echo "no harness $n (have: ${ALL[*]})"; exit 2; }
    build_harness "$n" & pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}" || exit 2; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" || exit 2; done
echo "== built in $(( $(date +%s) - t0 )) s"

# Seed corpora (copied, so that libFuzzer's additions stay in fuzz/.build).
seed() {  # seed NAME FILES...
    local d="$B/corpus/$1"; shift
    mkdir -p "$d"
    for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$d/seed-$(basename "$f")"; done
}
F=Tests/Fixtures
# (bad/fuzz-found: reproducers of what the fuzzers found, by harness name)
seed jpeg $F/bad/jpeg/* $F/bad/valid/*
seed pth $F/bad/pth/* $F/io/*.pth
seed safetensors $F/bad/safetensors/* $F/io/*.safetensors
seed coco $F/bad/coco/* $F/eval/*.json $F/io/*.json
seed rle $F/bad/fuzz-found/rle-*
seed http $F/bad/http/*
# multipart: boundary, newline, body (a requests-style form, a curl-style one, and broken ones)
mkdir -p "$B/corpus/multipart"
printf 'b0\n--b0\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nk\r\n--b0\r\nContent-Disposition: form-data; name="image"; filename="image"\r\n\r\n\xff\xd8\xff\xd9\r\n--b0--\r\n' > "$B/corpus/multipart/seed-requests"
printf -- '------------------------d74496d66958873e\npreamble\r\n--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\r\n--\r\n--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name="min_confidence"\r\n\r\n0.5\r\n--------------------------d74496d66958873e--\r\nepilogue' > "$B/corpus/multipart/seed-curl"
printf 'b\n--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nxx' > "$B/corpus/multipart/seed-unterminated"
printf 'b\n--b  \r\n\r\nxx\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--b--' > "$B/corpus/multipart/seed-no-headers"
mkdir -p "$B/corpus/rle"
printf '\x04\x05\x00' > "$B/corpus/rle/seed-empty-mask" && printf '20' >> "$B/corpus/rle/seed-empty-mask"
printf '\x08\x08\x0052203' > "$B/corpus/rle/seed-runs"
printf '\x10\x10\x01\xf4\x01\xf4\x01\x20\x03\xf4\x01\x20\x03\x20\x03' > "$B/corpus/rle/seed-polygon"
# frames: byte 0 the frame limit, byte 1 the chunking, then a stream: each corpus JPEG followed
# by a valid one, and a multipart (HTTP MJPEG) stream
mkdir -p "$B/corpus/frames"
for f in $F/bad/jpeg/* $F/bad/valid/*; do
    { printf '\x08\x03'; cat "$f" "$F/bad/valid/one_by_one.jpg"; } > "$B/corpus/frames/seed-$(basename "$f")"
done
{ printf '\x05\x01--frame\r\nContent-Type: image/jpeg\r\n\r\n'; cat "$F/bad/valid/progressive.jpg"
  printf '\r\n--frame\r\n\r\n'; cat "$F/bad/valid/with_restart_markers.jpg"; } > "$B/corpus/frames/seed-multipart"
for f in $F/rle/*.json; do
    # compressed counts strings of the RLE fixtures, with an (arbitrary) small size
    grep -o '"counts": *"[^"]*"' "$f" 2>/dev/null | head -20 | sed 's/.*"counts": *"//; s/"$//' | while IFS= read -r c; do
        printf '\x20\x20\x00%s' "$c" > "$B/corpus/rle/seed-$(printf '%s' "$c" | cksum | cut -d' ' -f1)"
    done
done

fuzz_one() {   # fuzz_one NAME: one harness for the whole limit; its report row in $B/$n.row
    local n="$1" art="$B/artifacts/$1/" log="$B/$1.log" t1 rc dt execs crashes status
    rm -rf "$art"; mkdir -p "$art"
    echo "== fuzz $n ${FLAGS[*]}"
    t1=$(date +%s)
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        nice -n 10 "$B/fuzz-$n" "${FLAGS[@]}" -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
        -artifact_prefix="$art" -print_final_stats=1 "$B/corpus/$n" > "$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t1 ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
    crashes=$(ls "$art" 2>/dev/null | grep -c -E '^(crash|leak|timeout|oom)-' || true)
    status=ok
    if [ $rc != 0 ] || [ "$crashes" != 0 ]; then status="FAILED (exit $rc, see $log)"; fi
    printf '%-12s %12s %8s %10s  %s\n' "$n" "${execs:-?}" "$crashes" "$dt" "$status" | tee "$B/$n.row"
}
t2=$(date +%s)
pids=()
for n in "${NAMES[@]}"; do
    rm -f "$B/$n.row"
    fuzz_one "$n" & pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]+"${pids[@]}"}"; do wait "$p"; done
printf '%-12s %12s %8s %10s  %s\n' harness executions crashes seconds status > "$B/report.txt"
fail=0
for n in "${NAMES[@]}"; do
    if [ -s "$B/$n.row" ]; then cat "$B/$n.row" >> "$B/report.txt"; else echo "$n: no result" >> "$B/report.txt"; fail=1; fi
    grep -q '  ok$' "$B/$n.row" 2>/dev/null || fail=1
done
echo "== fuzz report ($JOBS harnesses at a time, $(( $(date +%s) - t2 )) s)"
cat "$B/report.txt"
exit $fail
