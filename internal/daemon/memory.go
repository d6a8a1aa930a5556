package daemon

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimMemory gives back what the daemon holds but does not use while it
// idles between passes.
//
// The heap: FreeOSMemory returns what the last pass allocated now rather
// than whenever the scavenger gets round to it.
//
// The binary: every egoagent process starts by running the init functions
// of all linked packages, the 1Password SDK's many dependencies among them,
// and the kernel maps file pages around each fault 64 KB at a time. That
// leaves about 10 MB of the executable mapped, of which the daemon's own
// loop needs about a third. MADV_DONTNEED on the read-only mappings of the
// executable unmaps them; they are clean pages of the file, still in the
// page cache, and any the daemon touches again are mapped back on the spot.
// Writable mappings are left alone: there it would discard data.
func trimMemory() {
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.ContainsRune(fields[1], 'w') {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
