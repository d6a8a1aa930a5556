// Command hello is the baseline for start-up time: the smallest Go program
// that prints a line, built the same way as egoagent.
package main

import "fmt"

func main() { fmt.Println("hello") }
