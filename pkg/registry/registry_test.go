package registry

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func validMeter() Meter {
	m := Meter{ID: "m1", ParkID: "p1", Carrier: Electricity, Unit: "kWh", Multiplier: 1}
	m.MeterDefaults()
	return m
}

func TestMeterValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Meter)
		field string // empty: valid
	}{
		{"valid", func(*Meter) {}, ""},
		{"bad id", func(m *Meter) { m.ID = "M1" }, "id"},
		{"id too long", func(m *Meter) { m.ID = strings.Repeat("a", 65) }, "id"},
		{"id of 64", func(m *Meter) { m.ID = strings.Repeat("a", 64) }, ""},
		{"unknown carrier", func(m *Meter) { m.Carrier = "plutonium" }, "carrier"},
		{"gas in kWh", func(m *Meter) { m.Carrier = NaturalGas }, "unit"},
		{"gas in m3", func(m *Meter) { m.Carrier, m.Unit = NaturalGas, "m3" }, ""},
		{"coal in t", func(m *Meter) { m.Carrier, m.Unit = RawCoal, "t" }, ""},
		{"coal in kg", func(m *Meter) { m.Carrier, m.Unit = RawCoal, "kg" }, ""},
		{"coal in m3", func(m *Meter) { m.Carrier, m.Unit = RawCoal, "m3" }, "unit"},
		{"heat in GJ", func(m *Meter) { m.Carrier, m.Unit = Heat, "GJ" }, ""},
		{"heat in kWh", func(m *Meter) { m.Carrier = Heat }, "unit"},
		{"power gauge in kW", func(m *Meter) { m.Kind, m.Unit = Gauge, "kW" }, ""},
		{"power gauge in kWh", func(m *Meter) { m.Kind = Gauge }, "unit"},
		{"zero multiplier", func(m *Meter) { m.Multiplier = 0 }, "multiplier"},
		{"negative multiplier", func(m *Meter) { m.Multiplier = -2 }, "multiplier"},
		{"NaN multiplier", func(m *Meter) { m.Multiplier = math.NaN() }, "multiplier"},
		{"negative rollover", func(m *Meter) { m.Rollover = -1 }, "rollover"},
		{"rollover", func(m *Meter) { m.Rollover = 99999999.99 }, ""},
		{"infinite rollover", func(m *Meter) { m.Rollover = math.Inf(1) }, "rollover"},
		{"direction", func(m *Meter) { m.Direction = "up" }, "direction"},
		{"export", func(m *Meter) { m.Direction = Out }, ""},
		{"kind", func(m *Meter) { m.Kind = "sum" }, "kind"},
		{"green gas", func(m *Meter) { m.Carrier, m.Unit, m.GreenClass = NaturalGas, "m3", GreenDirect }, "green_class"},
		{"green class", func(m *Meter) { m.GreenClass = "bright" }, "green_class"},
		{"interval", func(m *Meter) { m.IntervalSeconds = -5 }, "interval_seconds"},
		{"rated capacity", func(m *Meter) { m.RatedCapacity = -1 }, "rated_capacity"},
		{"gateway id", func(m *Meter) { m.GatewayID = "GW 1" }, "gateway_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMeter()
			tt.edit(&m)
			err := m.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}

func TestParkAndEnterpriseValidate(t *testing.T) {
	for _, tt := range []struct {
		p     Park
		field string
	}{
		{Park{ID: "p1", Name: "Park", Timezone: "Asia/Shanghai"}, ""},
		{Park{ID: "p1", Name: " ", Timezone: "Asia/Shanghai"}, "name"},
		{Park{ID: "-p1", Name: "Park", Timezone: "Asia/Shanghai"}, "id"},
		{Park{ID: "p1", Name: "Park", Timezone: "Mars/Olympus"}, "timezone"},
		{Park{ID: "p1", Name: "Park", Timezone: "Local"}, "timezone"},
	} {
		err := tt.p.Validate()
		var fe *FieldError
		if (tt.field == "") != (err == nil) || err != nil && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("%+v: Validate() = %v, want field %q", tt.p, err, tt.field)
		}
	}
	for _, tt := range []struct {
		e     Enterprise
		field string
	}{
		{Enterprise{ID: "e1", ParkID: "p1", Name: "E", CreditCode: "91430300MA4L1234X5"}, ""},
		{Enterprise{ID: "e1", ParkID: "p1", Name: "E", CreditCode: "12345"}, "credit_code"},
		{Enterprise{ID: "e1", ParkID: "P1", Name: "E"}, "park_id"},
		{Enterprise{ID: "e1", ParkID: "p1"}, "name"},
	} {
		err := tt.e.Validate()
		var fe *FieldError
		if (tt.field == "") != (err == nil) || err != nil && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("%+v: Validate() = %v, want field %q", tt.e, err, tt.field)
		}
	}
}

func TestUnits(t *testing.T) {
	if got := Units(Electricity, Gauge); len(got) != 1 || got[0] != "kW" {
		t.Errorf("Units(electricity, gauge) = %v, want [kW]", got)
	}
	for _, c := range Carriers() {
		if len(Units(c, Counter)) == 0 {
			t.Errorf("carrier %s has no unit", c)
		}
	}
}
