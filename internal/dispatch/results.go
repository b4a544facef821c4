package dispatch

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Row is one recipient's result, as exported to the results ConfigMaps. The
// export is also the campaign's memory: it keeps attempts and outcomes of
// children that were pruned.
type Row struct {
	Phone           string
	Outcome         Outcome
	Attempts        int
	CallStatus      string
	SessionID       string
	DurationSeconds int64
	Cost            string
	LastEnd         time.Time
	Source          string
	Line            int
	Reason          string
}

// ResultsHeader is the CSV header of the results export.
var ResultsHeader = []string{"phone", "outcome", "attempts", "callStatus", "sessionID", "durationSeconds", "cost", "lastEnd", "source", "row", "reason"}

// MaxChunkBytes keeps each results ConfigMap well under the 1 MiB object limit.
const MaxChunkBytes = 700 * 1024

// EncodeChunks writes rows as CSV, split into chunks of at most
// MaxChunkBytes, each with the header.
func EncodeChunks(rows []Row) []string {
	var chunks []string
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	start := func() {
		buf.Reset()
		_ = w.Write(ResultsHeader)
	}
	start()
	header := 0
	w.Flush()
	header = buf.Len()
	for i := range rows {
		_ = w.Write(rows[i].record())
		w.Flush()
		if buf.Len() >= MaxChunkBytes {
			chunks = append(chunks, buf.String())
			start()
			w.Flush()
		}
	}
	if buf.Len() > header || len(chunks) == 0 {
		chunks = append(chunks, buf.String())
	}
	return chunks
}

func (r *Row) record() []string {
	end := ""
	if !r.LastEnd.IsZero() {
		end = r.LastEnd.UTC().Format(time.RFC3339)
	}
	dur := ""
	if r.DurationSeconds > 0 || r.Outcome == Succeeded {
		dur = strconv.FormatInt(r.DurationSeconds, 10)
	}
	line := ""
	if r.Line > 0 {
		line = strconv.Itoa(r.Line)
	}
	return []string{r.Phone, string(r.Outcome), strconv.Itoa(r.Attempts), r.CallStatus, r.SessionID, dur, r.Cost, end, r.Source, line, r.Reason}
}

// DecodeCSV reads one results chunk.
func DecodeCSV(s string) ([]Row, error) {
	rd := csv.NewReader(strings.NewReader(s))
	rd.FieldsPerRecord = len(ResultsHeader)
	recs, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read results CSV: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	rows := make([]Row, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		r := Row{Phone: rec[0], Outcome: Outcome(rec[1]), CallStatus: rec[3], SessionID: rec[4], Cost: rec[6], Source: rec[8], Reason: rec[10]}
		r.Attempts, _ = strconv.Atoi(rec[2])
		r.DurationSeconds, _ = strconv.ParseInt(rec[5], 10, 64)
		if rec[7] != "" {
			r.LastEnd, _ = time.Parse(time.RFC3339, rec[7])
		}
		r.Line, _ = strconv.Atoi(rec[9])
		rows = append(rows, r)
	}
	return rows, nil
}
