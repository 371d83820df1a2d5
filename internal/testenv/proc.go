package testenv

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// stat reads /proc/<pid>/stat and returns the fields after the command
// name (which may hold spaces and parentheses): state, ppid, ...
func stat(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// Alive is true for a process that exists and is neither a zombie nor dead.
func Alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// ParentPID is a process's parent pid; 0 when it is gone.
func ParentPID(pid int) int {
	f := stat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
