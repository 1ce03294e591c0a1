package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where a run happened: enough to compare two tables.
type Machine struct {
	Cores     int    // logical CPUs the Go runtime sees
	CPUModel  string // "model name" from /proc/cpuinfo
	MemTotal  string // MemTotal from /proc/meminfo
	Kernel    string // uname release
	GoVersion string
	StateDir  string // the folder holding every state file of the run
	FSType    string // filesystem of StateDir (ext4, xfs, tmpfs, ...)
	Device    string // mount source of StateDir (/dev/vda)
	MountOpts string
	Disk      string // "rotational", "non-rotational" or "unknown"
}

// ErrTmpfs is returned by DescribeMachine when the state folder is on a
// RAM-backed filesystem: fsync there costs nothing and every ratio lies.
var ErrTmpfs = errors.New("state folder is on tmpfs/ramfs: fsync costs nothing there; use a folder on the real disk (e.g. under the repository or $HOME)")

// DescribeMachine collects the machine facts and those of the filesystem
// holding stateDir (which must exist). A RAM-backed state folder is an
// ErrTmpfs error unless allowTmpfs.
func DescribeMachine(stateDir string, allowTmpfs bool) (Machine, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return Machine{}, fmt.Errorf("state folder %q: %v", stateDir, err)
	}
	m := Machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		StateDir:  abs,
		CPUModel:  procField("/proc/cpuinfo", "model name"),
		MemTotal:  procField("/proc/meminfo", "MemTotal"),
		Disk:      "unknown",
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err != nil {
		return m, fmt.Errorf("state folder %q: %v", abs, err)
	}
	mnt, ok := mountOf(abs)
	if ok {
		m.FSType, m.Device, m.MountOpts = mnt.fstype, mnt.source, mnt.opts
		m.Disk = rotational(mnt.source)
	}
	isRAM := st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
	if isRAM && m.FSType == "" {
		m.FSType = "tmpfs"
	}
	if isRAM && !allowTmpfs {
		return m, fmt.Errorf("%q: %w", abs, ErrTmpfs)
	}
	return m, nil
}

// procField returns the value of the first "key : value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

type mount struct{ point, fstype, source, opts string }

// mountOf finds the mount holding path (longest mount point prefix) in
// /proc/self/mountinfo.
func mountOf(path string) (mount, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mount{}, false
	}
	defer f.Close()
	var best mount
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if !ok || !under(path, m.point) {
			continue
		}
		if !found || len(m.point) >= len(best.point) {
			best, found = m, true
		}
	}
	return best, found
}

// parseMountinfo parses one /proc/self/mountinfo line:
// "id parent maj:min root point opts [optional...] - fstype source superopts".
func parseMountinfo(line string) (mount, bool) {
	left, right, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	lf, rf := strings.Fields(left), strings.Fields(right)
	if len(lf) < 6 || len(rf) < 2 {
		return mount{}, false
	}
	return mount{point: unescapeMount(lf[4]), opts: lf[5], fstype: rf[0], source: rf[1]}, true
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func under(path, point string) bool {
	if point == "/" {
		return true
	}
	return path == point || strings.HasPrefix(path, point+"/")
}

// rotational reads /sys/block/DEV/queue/rotational for a /dev/DEV source
// (partitions map to their parent disk).
func rotational(source string) string {
	dev := strings.TrimPrefix(source, "/dev/")
	if dev == source || dev == "" {
		return "unknown"
	}
	for _, d := range []string{dev, strings.TrimRight(dev, "0123456789"), strings.TrimSuffix(strings.TrimRight(dev, "0123456789"), "p")} {
		b, err := os.ReadFile(filepath.Join("/sys/block", d, "queue/rotational"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == "1" {
			return "rotational"
		}
		return "non-rotational"
	}
	return "unknown"
}

// Markdown renders the machine as a bullet list.
func (m Machine) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %d cores, %s (/proc/cpuinfo model name); memory %s\n", m.Cores, m.CPUModel, m.memGiB())
	fmt.Fprintf(&b, "- Kernel %s, %s\n", m.Kernel, m.GoVersion)
	fmt.Fprintf(&b, "- State folder (every state file, token and log of the run): `%s`, on the real disk %s (%s, mounted %s; /sys/block reports it %s), not tmpfs\n",
		m.StateDir, m.Device, m.FSType, m.MountOpts, m.Disk)
	return b.String()
}

// memGiB renders MemTotal ("24684096 kB") in GiB.
func (m Machine) memGiB() string {
	f := strings.Fields(m.MemTotal)
	if len(f) == 2 && f[1] == "kB" {
		var kb float64
		if _, err := fmt.Sscan(f[0], &kb); err == nil {
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return m.MemTotal
}
