package policy

import "testing"

// Only this machine is loopback: names that merely start like it are not.
func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.64.1.1": true, "::1": true,
		"": false, "localhost.example.com": false, "127.0.0.1.nip.io": false, "10.0.0.1": false, "[::1]": false, "0.0.0.0": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
