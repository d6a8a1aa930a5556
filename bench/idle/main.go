// Command idle is the baseline for resident memory: a Go program that does
// nothing but wait, built the same way as egoagent.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	os.Stdout.WriteString("ready\n")
	<-c
}
