package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A doc's commands are only trustworthy when a test runs them. A fenced
// block in a Markdown file (README.md, templates/guides/*.md.tmpl) that is
// preceded by the line
//
//	<!-- tested: NAME -->
//
// is a tested block: DocBlock hands its text to the test, which runs that
// text, not a copy of it, so the doc cannot drift from what is tested.
// The marker is an HTML comment, invisible where the Markdown is shown.

// RepoRoot is the repository's top directory (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the repository: runtime.Caller failed")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DocBlock is the body of the fenced block marked `<!-- tested: name -->`
// in file (relative to the repository's top). It fails the test when the
// file has no such block, or more than one.
func DocBlock(t testing.TB, file, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), file))
	if err != nil {
		t.Fatalf("doc %s: %v", file, err)
	}
	body, n := docBlock(string(raw), name)
	switch n {
	case 0:
		t.Fatalf("%s has no fenced block marked <!-- tested: %s -->", file, name)
	case 1:
	default:
		t.Fatalf("%s has %d fenced blocks marked <!-- tested: %s -->; a name marks one", file, n, name)
	}
	return body
}

// docBlock finds the fenced block after the marker of name and how many
// such markers there are.
func docBlock(doc, name string) (string, int) {
	marker := "<!-- tested: " + name + " -->"
	lines := strings.Split(doc, "\n")
	var body string
	found := 0
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != marker {
			continue
		}
		found++
		// The fence is the next non-empty line.
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[j]), "```") {
			return "", -1
		}
		fence := strings.TrimSpace(lines[j])
		fence = fence[:len(fence)-len(strings.TrimLeft(fence, "`"))]
		var out []string
		for k := j + 1; k < len(lines); k++ {
			if strings.TrimSpace(lines[k]) == fence {
				break
			}
			out = append(out, lines[k])
		}
		body = strings.Join(out, "\n") + "\n"
	}
	return body, found
}
