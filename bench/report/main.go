// Command report is the Go half of bench/compare.sh.
//
//	report uniquefiles -into STAGE DIR...
//	    copy every regular file of the trees whose content (BLAKE3) STAGE
//	    does not hold yet to STAGE/<hash>: the unique file contents of a
//	    history, for the file-level bound (compare.sh then runs zstd -3 on
//	    each). Prints "files N unique-new M".
//	report render -in RESULTS.jsonl -machine machine.txt -out DIR
//	    turn the measurements (one JSON object a line) into DIR/compare.md
//	    and DIR/compare.svg.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: report uniquefiles -into STAGE DIR... | render -in RESULTS -machine FILE -out DIR")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "uniquefiles":
		into := fs.String("into", "", "directory collecting one copy of each distinct content")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *into == "" || fs.NArg() == 0 {
			return fmt.Errorf("uniquefiles needs -into STAGE and at least one DIR")
		}
		seen, added, err := uniqueFiles(*into, fs.Args())
		if err != nil {
			return err
		}
		fmt.Printf("files %d unique-new %d\n", seen, added)
		return nil
	case "render":
		in := fs.String("in", "", "measurements, JSON lines")
		machine := fs.String("machine", "", "machine description and tool versions")
		out := fs.String("out", "", "output directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *in == "" || *out == "" {
			return fmt.Errorf("render needs -in and -out")
		}
		return render(*in, *machine, *out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}
