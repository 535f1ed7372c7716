package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"sealpost/internal/fsx"
	"sealpost/internal/store"
)

func testCheckpoint(n int64) *store.AuditCheckpoint {
	return &store.AuditCheckpoint{N: n, Seq: 10 * n, Count: 10, At: time.UnixMilli(1_800_000_000_000 + n),
		Hash: bytes.Repeat([]byte{byte(n)}, 32), MAC: bytes.Repeat([]byte{byte(n + 1)}, 32), Sig: bytes.Repeat([]byte{7}, 64)}
}

// A checkpoint Append has returned for survives a power cut: the line is
// fsynced, and the file's name too when Append created it. Without either
// fsync the witness would lose exactly what it exists to keep.
func TestWitnessAppendSurvivesPowerCut(t *testing.T) {
	t.Parallel()
	fault := fsx.NewFault()
	if err := fault.MkdirAll("/vol", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fault.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	w := &Witness{Path: "/vol/audit-witness.log", fs: fault}
	for n := int64(1); n <= 3; n++ {
		if err := w.Append(testCheckpoint(n)); err != nil {
			t.Fatal(err)
		}
		fault.PowerCut()
		fault.Restore()
		got, err := readWitness(fault, w.Path)
		if err != nil {
			t.Fatalf("after a power cut following checkpoint %d: %v", n, err)
		}
		if int64(len(got)) != n || got[n-1].N != n {
			t.Fatalf("after a power cut following checkpoint %d the witness holds %d checkpoints", n, len(got))
		}
	}
	if last := w.last(); last == nil || last.N != 3 {
		t.Fatalf("last() = %+v; want checkpoint 3", last)
	}
}

// Each checkpoint also goes to the system log, as one line naming it.
func TestWitnessCopiesToSystemLog(t *testing.T) {
	t.Parallel()
	var sys bytes.Buffer
	w := &Witness{Path: t.TempDir() + "/w.log", syslog: &sys}
	if err := w.Append(testCheckpoint(4)); err != nil {
		t.Fatal(err)
	}
	line := sys.String()
	if !strings.HasPrefix(line, "audit checkpoint {") || !strings.Contains(line, `"seq":40`) {
		t.Fatalf("system log got %q; want the checkpoint as one line", line)
	}
	if got, err := ReadWitness(w.Path); err != nil || len(got) != 1 {
		t.Fatalf("witness file: %v %v", got, err)
	}
}
