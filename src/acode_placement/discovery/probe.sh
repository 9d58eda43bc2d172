# acode-placement probe: what this machine offers, one "key value" line each.
#
#   sh probe.sh all|tools [TOOL ...]
#
# POSIX sh (dash, bash, busybox ash, macOS sh). It only reads: it changes nothing,
# starts no daemon and writes nothing but stdout. The first argument is always the
# mode (all: hardware and tools; tools: tools only), so no TOOL can ever be read as
# a mode or an option. Each TOOL is passed as its own argument (the caller checks it
# against ^[A-Za-z0-9._+][A-Za-z0-9._+-]{0,63}$ and quotes it) and only ever reaches
# `command -v --`; `version:TOOL` asks for the version TOOL states (`TOOL --version`,
# bounded below). The last line is "end"; a reader that does not see it knows the
# output was cut short.
LC_ALL=C
export LC_ALL

echo "acode-probe 1"

# Run a program named by the caller ("$@": its arguments stay arguments), stdin
# closed, for 5 s at most where `timeout` exists (the probe's own timeout bounds it
# elsewhere), and keep its first 20 lines as one line of printable text.
acode_run() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 5 "$@" </dev/null 2>&1
  else
    "$@" </dev/null 2>&1
  fi
}
acode_line() {
  head -n "$1" | tr -c '[:print:]' ' ' | cut -c1-"$2"
}

case "${1-}" in
  all) tools_only=0 ;;
  tools) tools_only=1 ;;
  *) echo "usage: probe.sh all|tools [TOOL ...]" >&2; exit 64 ;;
esac
shift

for tool in "$@"; do
  case "$tool" in
    version:*)
      # The version a tool states: `NAME --version` (never a shell word: quoted, and a
      # name cannot start with '-'), its first 3 lines, 256 characters at most.
      name=${tool#version:}
      text=""
      if command -v -- "$name" >/dev/null 2>&1; then
        text=$(acode_run "$name" --version | acode_line 3 256)
      fi
      if [ -n "$text" ]; then
        echo "tool $tool 1"
        echo "tool_version $name $text"
      else
        echo "tool $tool 0"
      fi
      ;;
    *)
      if command -v -- "$tool" >/dev/null 2>&1; then
        echo "tool $tool 1"
      else
        echo "tool $tool 0"
      fi
      ;;
  esac
done

if [ "$tools_only" = 1 ]; then
  echo "end"
  exit 0
fi

os=$(uname -s 2>/dev/null)
echo "os $os"
echo "arch $(uname -m 2>/dev/null)"
echo "kernel $(uname -r 2>/dev/null)"

case "$os" in
  Linux)
    # nproc counts the CPUs this process may use; OMP_* would change its answer.
    cpu=$( (unset OMP_NUM_THREADS OMP_THREAD_LIMIT; nproc) 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)
    echo "cpu $cpu"
    echo "mem_kb $(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo 2>/dev/null)"
    route=0
    if awk 'NR > 1 && $2 == "00000000" {found = 1} END {exit !found}' /proc/net/route 2>/dev/null; then
      route=1
    elif awk '$1 == "00000000000000000000000000000000" && $2 == "00" && $10 != "lo" {found = 1}
              END {exit !found}' /proc/net/ipv6_route 2>/dev/null; then
      route=1
    fi
    echo "route $route"
    # glibc's version ("glibc 2.35"); musl has none to tell, and says nothing.
    echo "glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | awk '$1 == "glibc" {print $2}')"
    ;;
  Darwin)
    echo "cpu $(sysctl -n hw.logicalcpu 2>/dev/null)"
    echo "mem_bytes $(sysctl -n hw.memsize 2>/dev/null)"
    if route -n get default >/dev/null 2>&1; then echo "route 1"; else echo "route 0"; fi
    # Apple silicon: the GPU is part of the chip and shares its memory.
    echo "chip $(sysctl -n machdep.cpu.brand_string 2>/dev/null)"
    ;;
  *)
    echo "cpu $(getconf _NPROCESSORS_ONLN 2>/dev/null || getconf NPROCESSORS_ONLN 2>/dev/null)"
    ;;
esac

# Free space of the working directory (the login directory over SSH), in KiB.
echo "disk_kb $(df -Pk . 2>/dev/null | awk 'NR == 2 {print $4}')"

if command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia-smi-begin"
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits 2>&1
  status=$?
  echo "nvidia-smi-end $status"
  # Compute capabilities: a field drivers before 510 do not know, so a query of its own.
  echo "nvidia-cc-begin"
  nvidia-smi --query-gpu=index,compute_cap --format=csv 2>&1
  status=$?
  echo "nvidia-cc-end $status"
  # GPUs split into MIG instances list them under their GPU ("  MIG 3g.40gb  Device 0:").
  echo "nvidia-list-begin"
  nvidia-smi -L 2>&1
  status=$?
  echo "nvidia-list-end $status"
  # The CUDA version the driver supports, from nvidia-smi's banner ("CUDA Version: 12.4").
  echo "cuda_version $(nvidia-smi 2>/dev/null | awk '{for (i = 1; i + 2 <= NF; i++) if ($i == "CUDA" && $(i + 1) == "Version:") {print $(i + 2); exit}}')"
fi
# Facts the settings name (`facts:`): the caller defines acode_facts before this
# script, each command an argument list quoted word by word.
if command -v acode_facts >/dev/null 2>&1; then
  acode_facts
fi
if [ -r /opt/rocm/.info/version ]; then
  echo "rocm_version $(head -n 1 /opt/rocm/.info/version 2>/dev/null)"
fi
if command -v rocm-smi >/dev/null 2>&1; then
  echo "rocm-smi-begin"
  rocm-smi --showproductname --showmeminfo vram --json 2>/dev/null
  status=$?
  echo ""
  echo "rocm-smi-end $status"
fi
echo "end"
