// Command dlpscan generates a mixed text corpus and measures the DLP
// scanner's throughput on one core, for comparison with ripgrep on the same
// file (bench/dlp.sh).
//
//	dlpscan gen -o FILE -mb 100 [-plain|-dense]   write a corpus (deterministic)
//	dlpscan time -n 3 FILE                 scan it n times on one core; print MB/s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"syscall"
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

// dense writes one line of number-dense text, as in council casework,
// minutes and finance mail: a date, an amount or a reference every few
// words, with phone and invoice numbers and postcodes, and now and then a
// real identifier (one line in eight). Numbers vary so the scanner cannot
// learn the file.
func dense(w *bufio.Writer, r *rand.Rand) {
	day, mon, yr := 1+r.IntN(28), 1+r.IntN(12), 2019+r.IntN(7)
	switch r.IntN(6) {
	case 0:
		fmt.Fprintf(w, "Ref %d/%06d: on %02d/%02d/%d the tenant paid £%d,%03d.%02d against invoice INV-%d-%06d; balance £%d.%02d due by %02d/%02d/%d.",
			yr, r.IntN(1e6), day, mon, yr, 1+r.IntN(9), r.IntN(1000), r.IntN(100), yr, r.IntN(1e6), r.IntN(5000), r.IntN(100), 1+r.IntN(28), mon, yr)
	case 1:
		fmt.Fprintf(w, "Item %d.%d (minute %d/%d): the committee noted spend of £%d,%03d (%d.%d%% of budget) at %02d:%02d on %d-%02d-%02d, case %d/%05d/FUL, PO %08d.",
			1+r.IntN(20), 1+r.IntN(9), yr%100, r.IntN(400), r.IntN(900), r.IntN(1000), r.IntN(100), r.IntN(10), r.IntN(24), r.IntN(60), yr, mon, day, yr%100, r.IntN(1e5), r.IntN(1e8))
	case 2:
		fmt.Fprintf(w, "Call 0%d %03d %04d or 07%03d %06d between 9 and 5; fax 0%d%d %d %04d. Our ref CT/%d/%05d, your ref %d-%d of %d %s %d.",
			113+r.IntN(800), r.IntN(1000), r.IntN(1e4), 700+r.IntN(300), r.IntN(1e6), 1+r.IntN(9), r.IntN(100), r.IntN(1000), r.IntN(1e4), yr, r.IntN(1e5), r.IntN(1e4), r.IntN(1e3), day, months[mon-1], yr)
	case 3:
		fmt.Fprintf(w, "Account %d: %d payments of £%d.%02d from %02d.%02d.%d, arrears £%d,%03d.%02d, %d days late; Flat %d, %d %s Road, %s.",
			r.IntN(1e7), 1+r.IntN(12), r.IntN(500), r.IntN(100), day, mon, yr, r.IntN(20), r.IntN(1000), r.IntN(100), r.IntN(200), 1+r.IntN(40), 1+r.IntN(300), streets[r.IntN(len(streets))], postcodes[r.IntN(len(postcodes))])
	case 4:
		fmt.Fprintf(w, "Batch %d of %d, %d records, run %d-%02d-%02dT%02d:%02d:%02dZ, total 1,%03d,%03d.%02d GBP, %d rejected (codes %d, %d, %d), ticket #%d.",
			1+r.IntN(50), 50+r.IntN(50), r.IntN(1e5), yr, mon, day, r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000), r.IntN(1000), r.IntN(100), r.IntN(50), 100+r.IntN(900), 100+r.IntN(900), 100+r.IntN(900), r.IntN(1e6))
	default:
		fmt.Fprintf(w, "Version %d.%d.%d released %d %s %d; %d MB, SHA %08x; %d of %d councils (%d%%) upgraded by %d/%d.",
			r.IntN(10), r.IntN(30), r.IntN(100), day, months[mon-1], yr, r.IntN(900), r.Uint32(), r.IntN(400), 400, r.IntN(100), mon, yr)
	}
	if r.IntN(8) == 0 {
		w.WriteString(" " + identifier(r) + ".")
	}
}

var (
	months    = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	streets   = []string{"High", "Station", "Church", "Mill", "Victoria", "Park"}
	postcodes = []string{"LS1 4AP", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "EC1A 1BB", "W1A 0AX"}
)

func gen(path string, mb int, plain, isDense bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(7, 11))
	total := int64(mb) << 20
	var n int64
	for isDense && w.Size() > 0 && n < total {
		before := w.Buffered()
		dense(w, r)
		w.WriteString("\n")
		// A line is far shorter than the buffer, so it either sits in the
		// buffer whole or the buffer was flushed while it was written.
		if after := w.Buffered(); after > before {
			n += int64(after - before)
		} else {
			n += int64(after + w.Size() - before)
		}
	}
	for !isDense && n < total {
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

func timeScan(path string, reps int, prof string) error {
	runtime.GOMAXPROCS(1)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	dlp.Text(data, func(m dlp.Match) { counts[m.Detector]++ }) // warm up, count
	var rates []float64
	if prof != "" {
		pf, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var cpuRates []float64
	for i := 0; i < reps; i++ {
		start, c0 := time.Now(), cpuTime()
		dlp.Text(data, func(dlp.Match) {})
		rates = append(rates, float64(len(data))/1e6/time.Since(start).Seconds())
		cpuRates = append(cpuRates, float64(len(data))/1e6/(cpuTime()-c0).Seconds())
	}
	sort.Float64s(rates)
	sort.Float64s(cpuRates)
	// Wall-clock rates suffer when the machine is shared; the CPU-time
	// rate (user+system of this process, one core) is what "per core"
	// means and what ripgrep's is compared with in dlp.sh.
	fmt.Printf("sealpost-dlp file=%s mb=%.1f reps=%d median_mb_per_cpu_s=%.0f min=%.0f max=%.0f median_mb_per_wall_s=%.0f matches=%v\n",
		path, float64(len(data))/1e6, reps, cpuRates[len(cpuRates)/2], cpuRates[0], cpuRates[len(cpuRates)-1], rates[len(rates)/2], counts)
	return nil
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	isDense := fs.Bool("dense", false, "gen: number-dense text (dates, amounts, references every few words)")
	reps := fs.Int("n", 3, "time: repetitions")
	prof := fs.String("cpuprofile", "", "time: write a CPU profile of the timed scans to this file")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(*out, min(*mb, 2048), *plain, *isDense)
	case "time":
		if fs.NArg() != 1 {
			err = fmt.Errorf("time needs one file")
		} else {
			err = timeScan(fs.Arg(0), min(*reps, 20), *prof)
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dlpscan:", err)
		os.Exit(1)
	}
}
