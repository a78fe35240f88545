package accountsvc

import (
	"errors"
	"strings"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func TestParseValueAddedCSV(t *testing.T) {
	good := "\uFEFFenterprise_id,month,nominal_10k_cny,real_growth_index,base_year\n" +
		"e1,2025-01,1200.5,1.0,2025\n" +
		"e2, 2025-02 ,800,1.052,2024\n"
	rows, err := ParseValueAddedCSV([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Enterprise != "e1" || rows[0].Nominal10kCNY != 1200.5 || rows[1].Month.Format("2006-01") != "2025-02" ||
		rows[1].RealGrowthIndex != 1.052 || rows[1].BaseYear != 2024 {
		t.Fatalf("rows = %+v", rows)
	}
	header := "enterprise_id,month,nominal_10k_cny,real_growth_index,base_year\n"
	for name, c := range map[string]struct{ doc, want string }{
		"empty":        {"", "header: empty document"},
		"wrong header": {"id,month,a,b,c\ne1,2025-01,1,1,2025\n", "header is"},
		"no rows":      {header, "no rows"},
		"bad month":    {header + "e1,2025-13,1,1,2025\n", "line 2: month"},
		"bad number":   {header + "e1,2025-01,abc,1,2025\n", "line 2: nominal_10k_cny"},
		"nan":          {header + "e1,2025-01,NaN,1,2025\n", "line 2: nominal_10k_cny"},
		"bad year":     {header + "e1,2025-01,1,1,20x5\n", "line 2: base_year"},
		"short row":    {header + "e1,2025-01,1,1\n", "wrong number of fields"},
		"duplicate":    {header + "e1,2025-01,1,1,2025\ne1,2025-01,2,1,2025\n", "line 3: e1 2025-01 already given on line 2"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseValueAddedCSV([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("err = %v, want an invalid-input error containing %q", err, c.want)
			}
		})
	}
}

func FuzzParseValueAddedCSV(f *testing.F) {
	f.Add([]byte("enterprise_id,month,nominal_10k_cny,real_growth_index,base_year\ne1,2025-01,1200.5,1.0,2025\n"))
	f.Add([]byte("enterprise_id,month,nominal_10k_cny,real_growth_index,base_year\n\"e1\",2025-01,1,1,2025"))
	f.Add([]byte("\uFEFF,,,,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseValueAddedCSV(data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v is not an invalid-input error", err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no rows and no error")
		}
		for _, r := range rows {
			if !finite(r.Nominal10kCNY) || !finite(r.RealGrowthIndex) || r.Month.IsZero() {
				t.Fatalf("accepted row %+v", r)
			}
		}
	})
}
