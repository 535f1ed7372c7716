// Command dlpscan generates a mixed text corpus and measures the DLP
// scanner's throughput on one core, for comparison with ripgrep on the same
// file (bench/dlp.sh).
//
//	dlpscan gen -o FILE -mb 100 [-plain]   write a corpus (deterministic)
//	dlpscan time -n 3 FILE                 scan it n times on one core; print MB/s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"time"

	"sealpost/internal/dlp"
)

var paragraphs = []string{
	"Dear Ms Smith, thank you for your letter of 3 March about the planning application for the extension at the rear of your property. The committee will consider it on 14 April; you may attend and speak for up to three minutes.",
	"The council tax reduction scheme helps people on low incomes. If your circumstances change, for example you start work or someone moves in, you must tell us within 21 days, or you may have to pay back any reduction.",
	"Bins are collected every other week. Put your bin out by 7am on collection day and bring it back in the same day. Garden waste is collected from March to November for households who subscribe.",
	"Minutes of the meeting held on 2025-03-11 at 10:30 in room 4.12. Present: the chair, the treasurer and four members. Apologies were received from two members. The minutes of the previous meeting were agreed.",
}

func identifier(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return "NHS no. 943 476 5919"
	case 1:
		return "NI number AB 12 34 56 C"
	case 2:
		return "card 4111 1111 1111 1111"
	case 3:
		return "IBAN GB82 WEST 1234 5698 7654 32"
	case 4:
		return "sort code 08-99-99 account 66374958"
	case 5:
		return "call 0161 496 0000 or 07700 900123"
	case 6:
		return "invoice INV-2024-000123, order 1234567890"
	default:
		return "VAT reg GB 980 7806 84, SW1A 2AA"
	}
}

func gen(path string, mb int, plain bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(7, 11))
	total := int64(mb) << 20
	var n int64
	for n < total {
		p := paragraphs[r.IntN(len(paragraphs))]
		k, _ := w.WriteString(p)
		n += int64(k)
		if !plain && r.IntN(4) == 0 {
			k, _ = w.WriteString(" " + identifier(r) + ".")
			n += int64(k)
		}
		w.WriteString("\n")
		n++
	}
	return w.Flush()
}

func timeScan(path string, reps int) error {
	runtime.GOMAXPROCS(1)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	dlp.Text(data, func(m dlp.Match) { counts[m.Detector]++ }) // warm up, count
	var rates []float64
	for i := 0; i < reps; i++ {
		start := time.Now()
		dlp.Text(data, func(dlp.Match) {})
		rates = append(rates, float64(len(data))/1e6/time.Since(start).Seconds())
	}
	sort.Float64s(rates)
	fmt.Printf("sealpost-dlp file=%s mb=%.1f reps=%d median_mb_per_s=%.0f min=%.0f max=%.0f matches=%v\n",
		path, float64(len(data))/1e6, reps, rates[len(rates)/2], rates[0], rates[len(rates)-1], counts)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dlpscan gen|time ...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	out := fs.String("o", "/tmp/dlp-corpus.txt", "gen: output file")
	mb := fs.Int("mb", 100, "gen: size in MiB")
	plain := fs.Bool("plain", false, "gen: prose only, no identifiers")
	reps := fs.Int("n", 3, "time: repetitions")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(*out, min(*mb, 2048), *plain)
	case "time":
		if fs.NArg() != 1 {
			err = fmt.Errorf("time needs one file")
		} else {
			err = timeScan(fs.Arg(0), min(*reps, 20))
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dlpscan:", err)
		os.Exit(1)
	}
}
