#!/usr/bin/env bash
# Installs the system packages edge-mrcnn needs to build and test on a fresh Debian machine
# (idempotent: does nothing when they are present). The Swift toolchain itself is assumed.
#   EDGE_MRCNN_CROSS=1 also installs what the aarch64 cross build and qemu runs need.
set -euo pipefail
need=()
[ -f /usr/include/jpeglib.h ] || need+=(libjpeg-dev)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if [ "${EDGE_MRCNN_CROSS:-0}" = 1 ]; then
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
  command -v file >/dev/null || need+=(file)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi
