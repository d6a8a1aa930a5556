//go:build !linux

package codexsim

import "testing"

// InNetns needs Linux network namespaces; elsewhere the test is skipped.
func InNetns(t *testing.T) bool {
	t.Helper()
	t.Skip("codexsim: network namespaces are Linux only")
	return false
}
