// Command mis stores virtual-machine disk images in a content-addressed,
// deduplicating repository and gives them back byte for byte.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	// MIS_CPUPROFILE=FILE writes a CPU profile of the command, for
	// engineers chasing a benchmark figure.
	if path := os.Getenv("MIS_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	err := root.ExecuteContext(ctx)
	pprof.StopCPUProfile()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "mis:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "mis:", err)
		os.Exit(1)
	}
}

// exitError ends the command with a specific status, e.g. verify's findings
// (already printed) exit 1 without repeating them.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
