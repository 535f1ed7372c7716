// Command mkimage writes the gateway's container image as an OCI archive
// without a container daemon (make image).
//
//	mkimage -binary sealpost -o dist/sealpost-oci.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"sealpost/internal/ociimage"
)

func main() {
	bin := flag.String("binary", "", "static sealpost binary (CGO_ENABLED=0)")
	out := flag.String("o", "dist/sealpost-oci.tar", "OCI archive to write")
	ref := flag.String("ref", "sealpost:latest", "reference name in the archive")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle to include")
	zi := flag.String("zoneinfo", "/usr/share/zoneinfo", "time zone directory to include")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -binary is required")
		os.Exit(2)
	}
	img, err := ociimage.Build(ociimage.Options{Binary: *bin, CAFile: *ca, ZoneInfo: *zi, Arch: runtime.GOARCH, Created: time.Unix(0, 0).UTC()})
	if err == nil {
		err = ociimage.WriteArchive(img, *ref, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
