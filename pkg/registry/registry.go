// Package registry holds the park registry's model (parks, enterprises, meters, gateways), the
// rules that keep it consistent, and the service that applies them over a Store.
package registry

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Errors returned by the registry; transports map them to status codes through one table.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the request is valid but the current state forbids it (a park with meters).
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid argument")
)

// FieldError is an ErrInvalid naming the offending field with a reason a person can act on.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) hold for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckID reports whether id is a valid resource id, naming field in the error.
func CheckID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	if !idPattern.MatchString(id) {
		return invalid(field, "%q must match %s", id, idPattern)
	}
	return nil
}

// Carrier is an energy carrier.
type Carrier string

// The carriers of DESIGN.md §5.
const (
	Electricity Carrier = "electricity"
	NaturalGas  Carrier = "natural_gas"
	RawCoal     Carrier = "raw_coal"
	Coke        Carrier = "coke"
	CrudeOil    Carrier = "crude_oil"
	FuelOil     Carrier = "fuel_oil"
	Gasoline    Carrier = "gasoline"
	Kerosene    Carrier = "kerosene"
	Diesel      Carrier = "diesel"
	LPG         Carrier = "lpg"
	Heat        Carrier = "heat"
	Steam       Carrier = "steam"
	Hydrogen    Carrier = "hydrogen"
)

// carrierUnits lists, per carrier, the units a counter register may be kept in. Gauges measure
// the matching rate (kW for kWh, m3/h for m3 ...), see gaugeUnits.
var carrierUnits = map[Carrier][]string{
	Electricity: {"kWh"},
	NaturalGas:  {"m3"},
	RawCoal:     {"t", "kg"},
	Coke:        {"t", "kg"},
	CrudeOil:    {"t", "kg"},
	FuelOil:     {"t", "kg"},
	Gasoline:    {"t", "kg"},
	Kerosene:    {"t", "kg"},
	Diesel:      {"t", "kg"},
	LPG:         {"t", "kg"},
	Heat:        {"GJ"},
	Steam:       {"t"},
	Hydrogen:    {"kg"},
}

// gaugeUnits maps a counter unit to the rate unit a gauge of the same carrier reports.
var gaugeUnits = map[string]string{"kWh": "kW", "m3": "m3/h", "t": "t/h", "kg": "kg/h", "GJ": "GJ/h"}

// Carriers returns every known carrier, sorted.
func Carriers() []Carrier {
	cs := make([]Carrier, 0, len(carrierUnits))
	for c := range carrierUnits {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// Units returns the units a meter of carrier c and kind k may report in.
func Units(c Carrier, k Kind) []string {
	us := carrierUnits[c]
	if k != Gauge {
		return slices.Clone(us)
	}
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, gaugeUnits[u])
	}
	return out
}

// Direction says whether energy flows into the park boundary or out of it.
type Direction string

// Directions.
const (
	In  Direction = "in"
	Out Direction = "out"
)

// Kind says whether a meter reports a cumulative register or an instantaneous value.
type Kind string

// Kinds.
const (
	Counter Kind = "counter"
	Gauge   Kind = "gauge"
)

// GreenClass marks electricity meters of direct-supply or on-site non-fossil power.
type GreenClass string

// Green classes.
const (
	GreenNone   GreenClass = "none"
	GreenDirect GreenClass = "direct"
)

// DefaultTimezone is the time zone of Chinese statistical periods (China Standard Time).
const DefaultTimezone = "Asia/Shanghai"

// Park is a zero-carbon industrial park.
type Park struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Province string `json:"province"`
	Timezone string `json:"timezone"`
}

// Validate checks a park that is about to be stored.
func (p *Park) Validate() error {
	if err := CheckID("id", p.ID); err != nil {
		return err
	}
	if strings.TrimSpace(p.Name) == "" {
		return invalid("name", "is required")
	}
	if len(p.Name) > 200 {
		return invalid("name", "is longer than 200 bytes")
	}
	if len(p.Province) > 64 {
		return invalid("province", "is longer than 64 bytes")
	}
	if p.Timezone == "" {
		return invalid("timezone", "is required")
	}
	if _, err := time.LoadLocation(p.Timezone); err != nil || p.Timezone == "Local" {
		return invalid("timezone", "%q is not an IANA time zone such as Asia/Shanghai", p.Timezone)
	}
	return nil
}

// Enterprise is a company inside a park.
type Enterprise struct {
	ID            string `json:"id"`
	ParkID        string `json:"park_id"`
	Name          string `json:"name"`
	IndustryCode  string `json:"industry_code"`
	CreditCode    string `json:"credit_code"`
	KeyEnergyUser bool   `json:"key_energy_user"`
}

var creditCodePattern = regexp.MustCompile(`^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$`)

// Validate checks an enterprise that is about to be stored.
func (e *Enterprise) Validate() error {
	if err := CheckID("id", e.ID); err != nil {
		return err
	}
	if err := CheckID("park_id", e.ParkID); err != nil {
		return err
	}
	if strings.TrimSpace(e.Name) == "" {
		return invalid("name", "is required")
	}
	if len(e.Name) > 200 {
		return invalid("name", "is longer than 200 bytes")
	}
	if len(e.IndustryCode) > 16 {
		return invalid("industry_code", "is longer than 16 bytes")
	}
	if e.CreditCode != "" && !creditCodePattern.MatchString(e.CreditCode) {
		return invalid("credit_code", "%q is not an 18-character unified social credit code", e.CreditCode)
	}
	return nil
}

// Meter measures one energy carrier at one point of the park.
type Meter struct {
	ID              string     `json:"id"`
	ParkID          string     `json:"park_id"`
	EnterpriseID    string     `json:"enterprise_id"`
	Carrier         Carrier    `json:"carrier"`
	Direction       Direction  `json:"direction"`
	Kind            Kind       `json:"kind"`
	Unit            string     `json:"unit"`
	Multiplier      float64    `json:"multiplier"`
	Rollover        float64    `json:"rollover"`
	GreenClass      GreenClass `json:"green_class"`
	GatewayID       string     `json:"gateway_id"`
	IntervalSeconds int32      `json:"interval_seconds"`
	// RatedCapacity is the physical bound per hour in the meter's unit; 0: not set.
	RatedCapacity float64 `json:"rated_capacity"`
}

// MeterDefaults fills the fields a client may leave out.
func (m *Meter) MeterDefaults() {
	if m.Direction == "" {
		m.Direction = In
	}
	if m.Kind == "" {
		m.Kind = Counter
	}
	if m.GreenClass == "" {
		m.GreenClass = GreenNone
	}
	if m.IntervalSeconds == 0 {
		m.IntervalSeconds = 900
	}
}

// Validate checks a meter on its own; Service also checks its references.
func (m *Meter) Validate() error {
	if err := CheckID("id", m.ID); err != nil {
		return err
	}
	if err := CheckID("park_id", m.ParkID); err != nil {
		return err
	}
	if m.EnterpriseID != "" {
		if err := CheckID("enterprise_id", m.EnterpriseID); err != nil {
			return err
		}
	}
	if _, ok := carrierUnits[m.Carrier]; !ok {
		return invalid("carrier", "%q is not one of %s", m.Carrier, joinCarriers())
	}
	if m.Direction != In && m.Direction != Out {
		return invalid("direction", "%q is not in or out", m.Direction)
	}
	if m.Kind != Counter && m.Kind != Gauge {
		return invalid("kind", "%q is not counter or gauge", m.Kind)
	}
	if units := Units(m.Carrier, m.Kind); !slices.Contains(units, m.Unit) {
		return invalid("unit", "%q does not fit a %s %s meter: use %s", m.Unit, m.Carrier, m.Kind, strings.Join(units, " or "))
	}
	if !(m.Multiplier > 0) || isInf(m.Multiplier) {
		return invalid("multiplier", "must be a finite number > 0, got %v", m.Multiplier)
	}
	if !(m.Rollover >= 0) || isInf(m.Rollover) {
		return invalid("rollover", "must be a finite number >= 0 (0: the register never wraps), got %v", m.Rollover)
	}
	if m.Kind == Gauge && m.Rollover != 0 {
		return invalid("rollover", "applies to counter meters only")
	}
	if m.GreenClass != GreenNone && m.GreenClass != GreenDirect {
		return invalid("green_class", "%q is not none or direct", m.GreenClass)
	}
	if m.GreenClass == GreenDirect && m.Carrier != Electricity {
		return invalid("green_class", "direct applies to electricity meters only")
	}
	if m.GatewayID != "" {
		if err := CheckID("gateway_id", m.GatewayID); err != nil {
			return err
		}
	}
	if m.IntervalSeconds <= 0 || m.IntervalSeconds > 86400 {
		return invalid("interval_seconds", "must be between 1 and 86400, got %d", m.IntervalSeconds)
	}
	if !(m.RatedCapacity >= 0) || isInf(m.RatedCapacity) {
		return invalid("rated_capacity", "must be a finite number >= 0, got %v", m.RatedCapacity)
	}
	return nil
}

// Gateway is an edge gateway; it publishes readings for the meters that name it.
type Gateway struct {
	ID     string `json:"id"`
	ParkID string `json:"park_id"`
	Name   string `json:"name"`
	// PasswordHash is the MQTT credential in Mosquitto's $7$ format (auth.HashPassword); it
	// never leaves the server except into a Mosquitto password file.
	PasswordHash string `json:"-"`
}

// Validate checks a gateway that is about to be stored.
func (g *Gateway) Validate() error {
	if err := CheckID("id", g.ID); err != nil {
		return err
	}
	if err := CheckID("park_id", g.ParkID); err != nil {
		return err
	}
	if len(g.Name) > 200 {
		return invalid("name", "is longer than 200 bytes")
	}
	return nil
}

func joinCarriers() string {
	cs := Carriers()
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

func isInf(f float64) bool { return math.IsInf(f, 0) }
