package accountsvc

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
)

// ValueAddedCSVHeader is the header line a value-added import starts with.
var ValueAddedCSVHeader = []string{"enterprise_id", "month", "nominal_10k_cny", "real_growth_index", "base_year"}

// maxCSVRows bounds one import (a park of 1,000 enterprises over 10 years).
const maxCSVRows = 120000

// ParseValueAddedCSV decodes a value-added import: the header ValueAddedCSVHeader, then one
// row per enterprise-month. A UTF-8 byte-order mark (spreadsheet exports) is skipped. The error
// names the line and column of the first bad cell.
func ParseValueAddedCSV(data []byte) ([]accounting.ValueAdded, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(ValueAddedCSVHeader)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, invalid("csv", "header: %v", csvErr(err))
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(header[i]))
	}
	if !slices.Equal(header, ValueAddedCSVHeader) {
		return nil, invalid("csv", "header is %q, want %q", strings.Join(header, ","), strings.Join(ValueAddedCSVHeader, ","))
	}
	var out []accounting.ValueAdded
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, invalid("csv", "%v", csvErr(err))
		}
		if len(out) == maxCSVRows {
			return nil, invalid("csv", "more than %d rows", maxCSVRows)
		}
		v, err := valueAddedRow(rec)
		if err != nil {
			return nil, invalid("csv", "line %d: %v", line, err)
		}
		key := v.Enterprise + "/" + v.Month.Format("2006-01")
		if prev, dup := seen[key]; dup {
			return nil, invalid("csv", "line %d: %s %s already given on line %d", line, v.Enterprise, v.Month.Format("2006-01"), prev)
		}
		seen[key] = line
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, invalid("csv", "no rows after the header")
	}
	return out, nil
}

func csvErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("empty document")
	}
	return err
}

func valueAddedRow(rec []string) (accounting.ValueAdded, error) {
	var v accounting.ValueAdded
	v.Enterprise = strings.TrimSpace(rec[0])
	m, err := ParseMonth("month", strings.TrimSpace(rec[1]))
	if err != nil {
		return v, err
	}
	v.Month = m
	num := func(col int) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(rec[col]), 64)
		if err != nil || !finite(f) {
			return 0, fmt.Errorf("%s: %q is not a number", ValueAddedCSVHeader[col], rec[col])
		}
		return f, nil
	}
	if v.Nominal10kCNY, err = num(2); err != nil {
		return v, err
	}
	if v.RealGrowthIndex, err = num(3); err != nil {
		return v, err
	}
	by, err := strconv.Atoi(strings.TrimSpace(rec[4]))
	if err != nil {
		return v, fmt.Errorf("base_year: %q is not a year", rec[4])
	}
	v.BaseYear = by
	return v, nil
}
