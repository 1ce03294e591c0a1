package bench

import (
	"errors"
	"os"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		line string
		want mount
		ok   bool
	}{
		{"22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard", mount{"/", "ext4", "/dev/vda", "rw,relatime"}, true},
		{"40 22 0:35 / /my\\040dir rw,nosuid - tmpfs tmpfs rw,size=10k", mount{"/my dir", "tmpfs", "tmpfs", "rw,nosuid"}, true},
		{"garbage", mount{}, false},
		{"1 2 3 - ext4", mount{}, false},
	} {
		got, ok := parseMountinfo(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		path, point string
		want        bool
	}{{"/a/b", "/", true}, {"/a/b", "/a", true}, {"/ab", "/a", false}, {"/a", "/a", true}} {
		if got := under(tc.path, tc.point); got != tc.want {
			t.Errorf("under(%q, %q) = %v", tc.path, tc.point, got)
		}
	}
}

func TestDescribeMachine(t *testing.T) {
	m, err := DescribeMachine(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cores < 1 || m.FSType == "" || m.CPUModel == "" {
		t.Fatalf("incomplete machine description: %+v", m)
	}
	// /dev/shm is tmpfs on Linux: it must be refused unless allowed.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if _, err := DescribeMachine("/dev/shm", false); !errors.Is(err, ErrTmpfs) {
			t.Fatalf("DescribeMachine(/dev/shm) = %v, want ErrTmpfs", err)
		}
	}
}
