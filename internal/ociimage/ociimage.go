// Package ociimage builds the gateway's container image without a
// daemon: one layer holding the static binary, the CA certificates, the
// time zones and passwd/group entries for a non-root user, no shell; an
// image config that runs as that user with the configuration and data
// directories as volumes. It is written as an OCI image layout in a tar
// archive (podman load, docker load, skopeo copy oci-archive:).
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID of the image's sealpost user (not 0: the image never runs
// as root; ports 25 and 443 are mapped by the runtime).
const (
	UID = 10025
	GID = 10025
)

// Options says what goes in.
type Options struct {
	Binary   string // the static sealpost binary
	CAFile   string // PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt
	ZoneInfo string // e.g. /usr/share/zoneinfo
	Arch     string // GOARCH of Binary
	Created  time.Time
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := o.Created
	dir := func(name string, uid int, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mt})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mt}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/bin", "usr/share", "tmp"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := dir(d, 0, mode); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"etc/sealpost", "var", "var/lib", "var/lib/sealpost"} {
		uid := UID
		if d == "var" || d == "var/lib" {
			uid = 0
		}
		if err := dir(d, uid, 0o750); err != nil {
			return nil, err
		}
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"usr/bin/sealpost", 0o755, bin},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, ca},
		{"etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/nonexistent:/nonexistent\nsealpost:x:%d:%d:sealpost:/var/lib/sealpost:/nonexistent\n", UID, GID)},
		{"etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nsealpost:x:%d:\n", GID)},
	} {
		if err := file(f.name, f.mode, f.data); err != nil {
			return nil, err
		}
	}
	// Time zones: Go reads /usr/share/zoneinfo (config durations, logs in
	// the operator's zone with TZ=).
	err = filepath.WalkDir(o.ZoneInfo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(o.ZoneInfo, p)
		name := filepath.ToSlash(filepath.Join("usr/share/zoneinfo", rel))
		switch {
		case d.IsDir():
			return dir(name, 0, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mt})
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return file(name, 0o644, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("time zones: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = o.Arch, "linux"
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint:   []string{"/usr/bin/sealpost"},
		Cmd:          []string{"serve", "--config", "/etc/sealpost/sealpost.toml"},
		WorkingDir:   "/var/lib/sealpost",
		Env:          []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "ZONEINFO=/usr/share/zoneinfo"},
		Volumes:      map[string]struct{}{"/etc/sealpost": {}, "/var/lib/sealpost": {}},
		ExposedPorts: map[string]struct{}{"25/tcp": {}, "587/tcp": {}, "443/tcp": {}},
		StopSignal:   "SIGTERM",
	}
	return mutate.ConfigFile(img, cf)
}

// WriteArchive writes img as an OCI image layout, tarred, to path
// (an "oci-archive"), tagged ref.
func WriteArchive(img v1.Image, ref, path string) error {
	dir, err := os.MkdirTemp("", "sealpost-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		f.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
