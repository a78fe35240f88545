package grpcapi

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// FuzzAlertRuleDecoder: any JSON body of an alert rule is decoded, converted and validated
// without panicking, and a refusal is an invalid-input error naming a field.
func FuzzAlertRuleDecoder(f *testing.F) {
	f.Add([]byte(`{"id":"r","name":"n","kind":"threshold","metric":"power","enterprise_id":"e","op":">","threshold":100,"clear":90,"window":"5m","for":"1m","severity":"critical"}`))
	f.Add([]byte(`{"id":"b","name":"b","kind":"carbon_budget","op":">","threshold":1,"budget_t":1200,"trajectory":"monthly","monthly_budget_t":[100,100,100,100,100,100,100,100,100,100,100,100],"severity":"info"}`))
	f.Add([]byte(`{"window":"-5m","for":"9999999h","repeat_interval":"1ns","labels":{"A":"b"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in pb.AlertRule
		if protojson.Unmarshal(body, &in) != nil {
			return
		}
		r, err := ruleFromPB("p1", &in)
		if err == nil {
			err = r.Validate()
		}
		var fe *registry.FieldError
		if err != nil && (!errors.Is(err, registry.ErrInvalid) || !errors.As(err, &fe) || fe.Field == "") {
			t.Fatalf("refusal %v does not name a field", err)
		}
		if err == nil && (r.ParkID != "p1" || r.Window < 0 || r.For < 0) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
