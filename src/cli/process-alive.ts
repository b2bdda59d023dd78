// Whether a process exists, for the owners of what a crashed run may leave behind (a trace
// table, a test namespace): signal 0 checks without sending; EPERM means it exists as another user.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
