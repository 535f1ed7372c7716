package ociimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"sealpost/internal/testutil"
)

// untar unpacks r below dir, refusing names that leave it.
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(os.PathSeparator)) && p != filepath.Clean(dir) {
			t.Fatalf("archive entry %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// TestImageArchive builds the OCI archive from the real binary, unpacks
// it with the same library and runs the binary from the unpacked root.
func TestImageArchive(t *testing.T) {
	for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/usr/share/zoneinfo/Europe/London"} {
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(t, "%s not installed (ca-certificates, tzdata)", p)
		}
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "sealpost")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../../cmd/sealpost")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	img, err := Build(Options{Binary: bin, CAFile: "/etc/ssl/certs/ca-certificates.crt", ZoneInfo: "/usr/share/zoneinfo", Arch: runtime.GOARCH, Created: time.Unix(0, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(tmp, "sealpost-oci.tar")
	if err := WriteArchive(img, "sealpost:test", archive); err != nil {
		t.Fatal(err)
	}

	// Unpack: the archive to an OCI layout, the layout's image to a root.
	lay := filepath.Join(tmp, "layout")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	untar(t, f, lay)
	f.Close()
	idx, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "sealpost:test" {
		t.Fatalf("index: %+v, %v", im, err)
	}
	got, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User == "" || strings.HasPrefix(c.User, "0") || strings.HasPrefix(c.User, "root") {
		t.Errorf("image runs as %q, want a non-root user", c.User)
	}
	for _, v := range []string{"/etc/sealpost", "/var/lib/sealpost"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("%s is not a volume: %v", v, c.Volumes)
		}
	}
	root := filepath.Join(tmp, "root")
	rc := mutate.Extract(got)
	untar(t, rc, root)
	rc.Close()
	for _, shell := range []string{"bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"} {
		if _, err := os.Lstat(filepath.Join(root, shell)); err == nil {
			t.Errorf("image has a shell: /%s", shell)
		}
	}
	for _, want := range []string{"etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo/Europe/London", "etc/passwd"} {
		if _, err := os.Stat(filepath.Join(root, want)); err != nil {
			t.Errorf("image lacks /%s", want)
		}
	}
	// The unpacked binary runs (static: nothing from the host's libc) and
	// init writes a configuration with it.
	ep := filepath.Join(root, c.Entrypoint[0])
	out, err := exec.Command(ep, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sealpost ") {
		t.Fatalf("%s version: %v\n%s", ep, err, out)
	}
	data := filepath.Join(tmp, "data")
	if out, err := exec.Command(ep, "init", "--data", data, "--domain", "example.test").CombinedOutput(); err != nil {
		t.Fatalf("init from the image's binary: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(data, "sealpost.toml")); err != nil {
		t.Fatal(err)
	}
}
