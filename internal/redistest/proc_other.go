//go:build !linux

package redistest

import "syscall"

// sysProcAttr is empty where there is no parent-death signal: a test
// binary that crashes may leave its redis-server running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
