package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time a process has used so far
// (fields 14 and 15 of /proc/PID/stat), all its threads included. The
// resolution is one clock tick (10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may itself contain
	// spaces and parentheses: the fields after it start at the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %.40q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat %.40q", s)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat %.40q", s)
	}
	return time.Duration(u+st) * clockTick, nil
}

// machineCPU returns the CPU time all cores spent busy (everything but idle
// and iowait) and in total, from the first line of /proc/stat.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineStat(string(b))
}

func parseMachineStat(s string) (busy, total time.Duration, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("malformed /proc/stat")
	}
	var idle int64
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed /proc/stat")
		}
		total += time.Duration(n) * clockTick
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total - time.Duration(idle)*clockTick, total, nil
}

// matchingPIDs returns the processes whose command line matches re, except
// the ones in skip.
func matchingPIDs(re *regexp.Regexp, skip map[int]bool) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || skip[pid] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if re.MatchString(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))) {
			out = append(out, pid)
		}
	}
	return out
}

// cpuSnapshot is the CPU time of a set of processes at one moment.
type cpuSnapshot map[int]time.Duration

func snapshot(pids []int) cpuSnapshot {
	s := cpuSnapshot{}
	for _, p := range pids {
		if d, err := procCPU(p); err == nil {
			s[p] = d
		}
	}
	return s
}

// since returns the CPU used between before and now by the processes that
// exist at both moments.
func (before cpuSnapshot) since(after cpuSnapshot) time.Duration {
	var d time.Duration
	for p, a := range after {
		if b, ok := before[p]; ok {
			d += a - b
		}
	}
	return d
}

// procMem returns a process's resident set size now (VmRSS) and its peak
// (VmHWM), in bytes, from /proc/PID/status.
func procMem(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatusMem(string(b))
}

func parseStatusMem(s string) (rss, peak int64, err error) {
	var seen int
	for _, line := range strings.Split(s, "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("malformed %s line %q", name, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed %s line %q", name, line)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
		seen++
	}
	if seen != 2 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in status")
	}
	return rss, peak, nil
}

// memOf sums procMem over pids (errors count as 0).
func memOf(pids []int) (rss, peak int64) {
	for _, p := range pids {
		r, h, err := procMem(p)
		if err == nil {
			rss, peak = rss+r, peak+h
		}
	}
	return rss, peak
}
