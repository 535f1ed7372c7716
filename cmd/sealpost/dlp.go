package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"sealpost/internal/dlp"
	"sealpost/internal/gateway"
)

// dlpEngine builds the scanner from the configuration, or with the built-in
// detectors alone when there is no configuration.
func dlpEngine(g *globalFlags) (*dlp.Engine, error) {
	cfg, err := g.loadConfig()
	var ue usageError
	switch {
	case errors.As(err, &ue) && g.config == "":
		// no configuration anywhere: built-in detectors only
		return gateway.DLPEngine(nil)
	case err != nil:
		return nil, err
	}
	return gateway.DLPEngine(cfg)
}

func dlpCmd(g *globalFlags) *cobra.Command {
	d := groupCmd("dlp", "Data-loss prevention: scan messages and documents")
	var asJSON bool
	scan := newCmd("scan FILE...", "Scan messages (.eml) or documents and print what they contain", cobra.MinimumNArgs(1), func(cmd *cobra.Command, args []string) error {
		e, err := dlpEngine(g)
		if err != nil {
			return err
		}
		type fileResult struct {
			File string `json:"file"`
			*dlp.Result
			Error string `json:"error,omitempty"`
		}
		out := struct {
			Files []fileResult `json:"files"`
		}{Files: []fileResult{}}
		failed := 0
		for _, name := range args {
			data, err := os.ReadFile(name)
			if err != nil {
				failed++
				out.Files = append(out.Files, fileResult{File: name, Result: &dlp.Result{Findings: []dlp.Finding{}}, Error: err.Error()})
				continue
			}
			var res *dlp.Result
			if isMessage(name, data) {
				res, err = e.ScanMessage(strings.NewReader(string(data)))
				if err != nil {
					res = e.ScanDocument(name, data)
				}
			} else {
				res = e.ScanDocument(name, data)
			}
			out.Files = append(out.Files, fileResult{File: name, Result: res})
		}
		if asJSON {
			if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
				return err
			}
		} else {
			for _, f := range out.Files {
				if f.Error != "" {
					fmt.Printf("%s: cannot read: %s\n", f.File, f.Error)
					continue
				}
				mark := f.Classification
				if mark == "" {
					mark = "no marking"
				}
				if len(f.Findings) == 0 {
					fmt.Printf("%s: %s; nothing found\n", f.File, mark)
					continue
				}
				fmt.Printf("%s: %s\n", f.File, mark)
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				for _, fd := range f.Findings {
					fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", fd.Detector, fd.Count, fd.Confidence, fd.Where)
				}
				tw.Flush()
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d files could not be read", failed, len(args))
		}
		return nil
	})
	scan.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	d.AddCommand(scan)
	var infoJSON bool
	info := newCmd("info", "Show the detectors and the date of the Vocalink modulus tables in use", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		e, err := dlpEngine(g)
		if err != nil {
			return err
		}
		t := e.ModulusTables()
		out := struct {
			Detectors []string `json:"detectors"`
			Vocalink  struct {
				Source string `json:"source"`
				Date   string `json:"date"`
				Ranges int    `json:"ranges"`
			} `json:"vocalink_modulus_tables"`
		}{Detectors: e.Detectors()}
		out.Vocalink.Source, out.Vocalink.Date, out.Vocalink.Ranges = t.Source, t.Date, t.Ranges()
		if infoJSON {
			return json.NewEncoder(os.Stdout).Encode(out)
		}
		fmt.Printf("Vocalink modulus tables: %s, dated %s, %d sort code ranges\n", t.Source, t.Date, t.Ranges())
		fmt.Println("Detectors:")
		for _, d := range out.Detectors {
			fmt.Printf("  %s\n", d)
		}
		return nil
	})
	info.Flags().BoolVar(&infoJSON, "json", false, "one JSON document on stdout")
	d.AddCommand(info)
	return d
}

// isMessage: .eml files, or anything that starts like a mail header.
func isMessage(name string, data []byte) bool {
	if strings.EqualFold(filepath.Ext(name), ".eml") {
		return true
	}
	head := string(data[:min(len(data), 1024)])
	for _, h := range []string{"From:", "Received:", "Return-Path:", "Subject:", "MIME-Version:", "Date:", "Message-ID:"} {
		if strings.HasPrefix(head, h) {
			return true
		}
	}
	return false
}
