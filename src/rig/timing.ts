// How long the rig waits. Inside the kernel-matrix VMs (qemu TCG, SY_VM=1)
// everything runs roughly an order of magnitude slower than on the host, so
// every deadline is multiplied by one factor: SY_TIME_SCALE, default 10 in a
// VM and 1 elsewhere. Deadlines only bound waiting; nothing sleeps for them.

export const TIME_SCALE = Number(process.env['SY_TIME_SCALE'] ?? (process.env['SY_VM'] ? 10 : 1)) || 1;

export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}
