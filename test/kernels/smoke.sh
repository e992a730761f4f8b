#!/bin/sh
# Smoke test for the kernel-matrix VM (scripts/kernels/run.ts), run inside each VM:
#   node scripts/kernels/run.ts --kernels 5.10,6.1 -- sh test/kernels/smoke.sh
# Checks that the VM is what the end-to-end tests expect: the asked-for kernel, Node 24,
# network namespaces + veth + clsact, IPVS, bpffs, cgroup2, a read-only repo and module
# auto-loading. Prints one line per check and '<n> passed, <m> failed' at the end.

passed=0
failed=0
check() {
  name=$1
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok   $name${out:+: $(echo "$out" | head -n 3 | tr '\n' ' ')}"
  else
    failed=$((failed + 1))
    echo "FAIL $name: $(echo "$out" | tail -n 5 | tr '\n' ' ')"
  fi
}

kernel_is_asked() {
  r=$(uname -r)
  echo "$r"
  [ -n "$SY_KERNEL_RELEASE" ] && [ "$r" = "$SY_KERNEL_RELEASE" ]
}
node_24() {
  v=$(node -e 'process.stdout.write(process.version)') || return 1
  echo "$v ($(command -v node))"
  case "$v" in v24.*) ;; *) return 1 ;; esac
}
node_typescript() {
  node -e 'const x: number = 40 + 2; console.log(`type stripping ok ${x}`)' --input-type=module-typescript
}
netns_veth_clsact() {
  ip netns add smoke &&
    ip -n smoke link add v0 type veth peer name v1 &&
    tc -n smoke qdisc add dev v0 clsact &&
    tc -n smoke qdisc show dev v0 | grep clsact
  rc=$?
  ip netns del smoke 2>/dev/null
  return $rc
}
ipvs() {
  ipvsadm -A -t 10.96.0.1:80 -s rr &&
    ipvsadm -a -t 10.96.0.1:80 -r 10.0.0.2:8080 -m &&
    ipvsadm -Ln | grep -A1 '10.96.0.1:80'
  rc=$?
  ipvsadm -C
  return $rc
}
ipvs_autoload_scheduler() {
  # ip_vs_lc is not preloaded: the kernel asks modprobe for it (module auto-loading).
  ipvsadm -A -t 10.96.0.2:80 -s lc && grep -w '^ip_vs_lc' /proc/modules
  rc=$?
  ipvsadm -C
  return $rc
}
bpffs() { grep ' /sys/fs/bpf bpf ' /proc/mounts; }
cgroup2() { grep ' /sys/fs/cgroup cgroup2 ' /proc/mounts; }
repo_read_only() {
  if touch .sy-smoke-write 2>/dev/null; then
    rm -f .sy-smoke-write
    echo "repo is writable"
    return 1
  fi
  echo "$(pwd) read-only"
}
tmp_writable() { echo ok >/tmp/sy-smoke && cat /tmp/sy-smoke; }
bpf_jit() { echo "bpf_jit_enable=$(cat /proc/sys/net/core/bpf_jit_enable)"; }

check "kernel is the one asked for (uname -r)" kernel_is_asked
check "node 24 runs" node_24
check "node strips TypeScript types" node_typescript
check "ip netns + veth + tc clsact" netns_veth_clsact
check "ipvsadm -A -t 10.96.0.1:80 -s rr" ipvs
check "module auto-loading (ip_vs_lc)" ipvs_autoload_scheduler
check "bpffs mounted at /sys/fs/bpf" bpffs
check "cgroup2 mounted at /sys/fs/cgroup" cgroup2
check "repo is read-only" repo_read_only
check "/tmp is writable" tmp_writable
check "bpf jit" bpf_jit

echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
