package patroni_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sysPath is the PATH of every process the tests start: Debian's Patroni and
// patronictl run on /usr/bin/python3, whatever python3 comes first in the
// caller's PATH.
const sysPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runBase is where run directories live; a run directory holds everything a
// run writes (configurations, data directories, logs) and is removed when
// the run passes.
func runBase() string { return filepath.Join(os.TempDir(), "regiondns-e2e-patroni") }

// pgUser is the postgres OS user: PostgreSQL refuses to run as root, and
// PgBouncer too.
type pgUser struct{ uid, gid int }

func lookupPostgres(t *testing.T) pgUser {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the postgres OS user (from the postgresql package) is missing: %v; run scripts/install-patroni-deps.sh", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return pgUser{uid, gid}
}

// mkdir creates dir owned by the postgres user, readable by all.
func (u pgUser) mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes a file owned by the postgres user.
func (u pgUser) writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
}

// proc is one long-running process started as the postgres user, in a
// process group of its own, killed by the kernel when the test binary dies.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

// startProc starts args[0] with args[1:] as the postgres user, output
// appended to logPath, and writes its pid to pidPath (for reapStaleRuns).
func startProc(t *testing.T, u pgUser, name, logPath, pidPath string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==> test: starting %s: %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Env = []string{"PATH=" + sysPath, "HOME=" + filepath.Dir(logPath), "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL, // Go sets it after the credentials, so it holds
		Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)},
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	_ = os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	return p
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends sig to the process (not its group) and waits up to timeout for
// the exit; then it kills the group and reports false.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) bool {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		p.kill()
		return false
	}
}

// logTail returns the last n bytes of the process's log.
func (p *proc) logTail(n int64) string { return tailFile(p.logPath, n) }

func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// pidAlive reports whether pid is a live process (not a zombie) whose command
// line contains want.
func pidAlive(pid int, want string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), want)
}

// killPostmaster kills the PostgreSQL server of dataDir, if it runs, with
// SIGKILL, and waits until it is gone; its backends notice the postmaster's
// death and exit. Patroni starts the postmaster in a session of its own, so
// it outlives Patroni (and the test binary: see startWatchdog).
func killPostmaster(dataDir string) {
	pid := postmasterPID(dataDir)
	if !pidAlive(pid, dataDir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid, dataDir) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// postmasterPID reads the first line of dataDir/postmaster.pid, or 0.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// watchdogScript kills the run's postmasters once the test binary ($1) is
// gone, then exits; it gives up after an hour (a recycled pid).
const watchdogScript = `owner=$1 run=$2 n=0
while kill -0 "$owner" 2>/dev/null && [ $n -lt 3600 ]; do sleep 1; n=$((n+1)); done
for f in "$run"/*/data/postmaster.pid; do
	[ -f "$f" ] || continue
	pid=$(head -n 1 "$f")
	if [ -n "$pid" ] && tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$run"; then
		kill -9 "$pid"
	fi
done`

// startWatchdog starts a shell, in a session of its own, that kills the
// run's postmasters when the test binary dies without running its cleanups
// (a -timeout panic): Patroni, PgBouncer, Consul and regiondns die with it
// (Pdeathsig), a postmaster does not. The cleanup stops the watchdog.
func startWatchdog(t *testing.T, runDir string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "watchdog", strconv.Itoa(os.Getpid()), runDir)
	cmd.Env = []string{"PATH=" + sysPath}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the watchdog: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// reapStaleRuns ends what earlier runs of this test left running when the
// test binary was killed before its cleanups ran (a -timeout panic, a
// SIGKILL): Patroni and PgBouncer die with the test binary, but a postmaster
// lives in its own session. Only processes named in the run directory's pid
// files whose command line names that run directory are killed; then the
// directory is removed.
func reapStaleRuns(t *testing.T) {
	entries, err := os.ReadDir(runBase())
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(runBase(), e.Name())
		owner, _ := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(owner))); pid > 0 && pidAlive(pid, "") {
			continue // a run in progress (or a recycled pid: left alone to be safe)
		}
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			switch {
			case d.Name() == "postmaster.pid":
				killPostmaster(filepath.Dir(path))
			case strings.HasSuffix(d.Name(), ".pid"):
				b, _ := os.ReadFile(path)
				if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pidAlive(pid, dir) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
		t.Logf("removing the run directory %s left by an earlier run", dir)
		_ = os.RemoveAll(dir)
	}
}
