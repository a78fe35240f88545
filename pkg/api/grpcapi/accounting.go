package grpcapi

import (
	"context"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	"github.com/parkcarbon/parkcarbon/pkg/accountsvc"
	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/factors"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/period"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Accounting serves AccountingService.
type Accounting struct {
	pb.UnimplementedAccountingServiceServer
	Service *accountsvc.Service
}

var _ pb.AccountingServiceServer = (*Accounting)(nil)

const (
	maxIndicatorSpan = 10 * 366 * 24 * time.Hour
	monthLayout      = "2006-01"
)

var globalRes = auth.Resource{Kind: auth.KindGlobal}

// enterpriseDataRes is an enterprise's own data when enterprise is set, else the park's.
func enterpriseDataRes(park, enterprise string) auth.Resource {
	if enterprise != "" {
		return enterpriseRes(park, enterprise)
	}
	return dataRes(park)
}

// ---- factor sets ----

// ListFactorSets lists every version of every factor set.
func (s *Accounting) ListFactorSets(ctx context.Context, _ *pb.ListFactorSetsRequest) (*pb.ListFactorSetsResponse, error) {
	if err := authorize(ctx, auth.Read, globalRes); err != nil {
		return nil, apierr.Status(err)
	}
	sets, err := s.Service.FactorSets(ctx)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListFactorSetsResponse{FactorSets: mapSlice(sets, factorSetToPB)}, nil
}

// GetFactorSet returns one version of a factor set (version 0: the latest).
func (s *Accounting) GetFactorSet(ctx context.Context, req *pb.GetFactorSetRequest) (*pb.FactorSet, error) {
	if err := authorize(ctx, auth.Read, globalRes); err != nil {
		return nil, apierr.Status(err)
	}
	set, err := s.Service.FactorSet(ctx, req.GetId(), int(req.GetVersion()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	return factorSetToPB(set), nil
}

// PublishFactorSet issues a new factor set version (admin).
func (s *Accounting) PublishFactorSet(ctx context.Context, req *pb.PublishFactorSetRequest) (*pb.FactorSet, error) {
	if err := authorize(ctx, auth.Admin, globalRes); err != nil {
		return nil, apierr.Status(err)
	}
	if req.GetFactorSet() == nil {
		return nil, apierr.Status(&registry.FieldError{Field: "factor_set", Reason: "is required"})
	}
	set, err := s.Service.PublishFactorSet(ctx, factorSetFromPB(req.GetFactorSet()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	return factorSetToPB(set), nil
}

func coefficientToPB(c factors.Coefficient) *pb.Coefficient {
	return &pb.Coefficient{
		Carrier: c.Carrier, Product: c.Product, Unit: c.Unit,
		KgceEquivalent: c.KgceEquivalent, KgceEqual: c.KgceEqual, Kgco2: c.KgCO2, Kgco2Green: c.KgCO2Green,
		Source: c.Source, OperatorSupplied: c.OperatorSupplied,
	}
}

func coefficientFromPB(c *pb.Coefficient) factors.Coefficient {
	return factors.Coefficient{
		Carrier: c.GetCarrier(), Product: c.GetProduct(), Unit: c.GetUnit(),
		KgceEquivalent: c.KgceEquivalent, KgceEqual: c.KgceEqual, KgCO2: c.Kgco2, KgCO2Green: c.Kgco2Green,
		Source: c.GetSource(), OperatorSupplied: c.GetOperatorSupplied(),
	}
}

func factorSetToPB(s factors.Set) *pb.FactorSet {
	return &pb.FactorSet{
		Id: s.ID, Version: int32(s.Version), Base: s.Base, Rule: s.Rule, Method: string(s.Method),
		EffectiveFrom: s.EffectiveFrom, ElectricityConvention: string(s.ElectricityConvention),
		Carriers: mapSlice(s.Carriers, coefficientToPB), Products: mapSlice(s.Products, coefficientToPB),
	}
}

func factorSetFromPB(s *pb.FactorSet) factors.Set {
	return factors.Set{
		ID: s.GetId(), Version: int(s.GetVersion()), Base: s.GetBase(), Rule: s.GetRule(),
		Method: factors.Method(s.GetMethod()), EffectiveFrom: s.GetEffectiveFrom(),
		ElectricityConvention: factors.Convention(s.GetElectricityConvention()),
		Carriers:              mapSlice(s.GetCarriers(), coefficientFromPB),
		Products:              mapSlice(s.GetProducts(), coefficientFromPB),
	}
}

// ---- inputs ----

// samePath checks that a body field repeats the path's value or leaves it empty.
func samePath(field, path, body string) error {
	if body != "" && body != path {
		return &registry.FieldError{Field: field, Reason: "is " + body + " in the body but " + path + " in the path"}
	}
	return nil
}

// enterpriseMonthBody is a request body keyed by park, enterprise and month.
type enterpriseMonthBody interface {
	GetParkId() string
	GetEnterpriseId() string
	GetMonth() string
}

// enterpriseMonth checks that a body repeats its path's park, enterprise and month (or leaves
// them empty) and parses the month.
func enterpriseMonth(park, ent, month string, body enterpriseMonthBody) (time.Time, error) {
	for _, c := range [][3]string{{"park_id", park, body.GetParkId()}, {"enterprise_id", ent, body.GetEnterpriseId()}, {"month", month, body.GetMonth()}} {
		if err := samePath(c[0], c[1], c[2]); err != nil {
			return time.Time{}, err
		}
	}
	return accountsvc.ParseMonth("month", month)
}

// PutValueAdded stores one enterprise-month of value added.
func (s *Accounting) PutValueAdded(ctx context.Context, req *pb.PutValueAddedRequest) (*pb.ValueAdded, error) {
	park, ent := req.GetParkId(), req.GetEnterpriseId()
	if err := authorize(ctx, auth.Write, enterpriseRes(park, ent)); err != nil {
		return nil, apierr.Status(err)
	}
	body := req.GetValueAdded()
	m, err := enterpriseMonth(park, ent, req.GetMonth(), body)
	if err != nil {
		return nil, apierr.Status(err)
	}
	v := accounting.ValueAdded{Enterprise: ent, Month: m, Nominal10kCNY: body.GetNominal_10KCny(),
		RealGrowthIndex: body.GetRealGrowthIndex(), BaseYear: int(body.GetBaseYear())}
	if err := s.Service.PutValueAdded(ctx, park, v); err != nil {
		return nil, apierr.Status(err)
	}
	return valueAddedToPB(park, v), nil
}

func valueAddedToPB(park string, v accounting.ValueAdded) *pb.ValueAdded {
	return &pb.ValueAdded{ParkId: park, EnterpriseId: v.Enterprise, Month: v.Month.Format(monthLayout),
		Nominal_10KCny: v.Nominal10kCNY, RealGrowthIndex: v.RealGrowthIndex, BaseYear: int32(v.BaseYear)}
}

// monthRange parses an inclusive YYYY-MM range; empty ends are open.
func monthRange(from, to string) (string, string, error) {
	if from == "" {
		from = "2000-01"
	} else if _, err := accountsvc.ParseMonth("from", from); err != nil {
		return "", "", err
	}
	if to == "" {
		to = "9999-12"
	} else if _, err := accountsvc.ParseMonth("to", to); err != nil {
		return "", "", err
	}
	return from, to, nil
}

// ListValueAdded lists value added of one enterprise or of every enterprise of the park.
func (s *Accounting) ListValueAdded(ctx context.Context, req *pb.ListValueAddedRequest) (*pb.ListValueAddedResponse, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, enterpriseDataRes(park, req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	from, to, err := monthRange(req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, apierr.Status(err)
	}
	vs, err := s.Service.Inputs.ListValueAdded(ctx, park, req.GetEnterpriseId(), from, to)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListValueAddedResponse{ValueAdded: mapSlice(vs, func(v accounting.ValueAdded) *pb.ValueAdded { return valueAddedToPB(park, v) })}, nil
}

// ImportValueAdded stores the rows of a CSV document.
func (s *Accounting) ImportValueAdded(ctx context.Context, req *pb.ImportValueAddedRequest) (*pb.ImportValueAddedResponse, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	n, err := s.Service.ImportValueAdded(ctx, req.GetParkId(), req.GetCsv())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ImportValueAddedResponse{Rows: int32(n)}, nil
}

// PutProcessOutput stores one month's output of a process product.
func (s *Accounting) PutProcessOutput(ctx context.Context, req *pb.PutProcessOutputRequest) (*pb.ProcessOutput, error) {
	park, ent := req.GetParkId(), req.GetEnterpriseId()
	if err := authorize(ctx, auth.Write, enterpriseRes(park, ent)); err != nil {
		return nil, apierr.Status(err)
	}
	body := req.GetProcessOutput()
	m, err := enterpriseMonth(park, ent, req.GetMonth(), body)
	if err != nil {
		return nil, apierr.Status(err)
	}
	p := accounting.ProcessOutput{Enterprise: ent, Month: m, Product: body.GetProduct(), Tonnes: body.GetTonnes()}
	if err := s.Service.PutProcessOutput(ctx, park, p); err != nil {
		return nil, apierr.Status(err)
	}
	return processOutputToPB(park, p), nil
}

func processOutputToPB(park string, p accounting.ProcessOutput) *pb.ProcessOutput {
	return &pb.ProcessOutput{ParkId: park, EnterpriseId: p.Enterprise, Month: p.Month.Format(monthLayout), Product: p.Product, Tonnes: p.Tonnes}
}

// ListProcessOutputs lists process output of one enterprise or of the park.
func (s *Accounting) ListProcessOutputs(ctx context.Context, req *pb.ListProcessOutputsRequest) (*pb.ListProcessOutputsResponse, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, enterpriseDataRes(park, req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	from, to, err := monthRange(req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, apierr.Status(err)
	}
	ps, err := s.Service.Inputs.ListProcessOutputs(ctx, park, req.GetEnterpriseId(), from, to)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListProcessOutputsResponse{ProcessOutputs: mapSlice(ps, func(p accounting.ProcessOutput) *pb.ProcessOutput { return processOutputToPB(park, p) })}, nil
}

// CreateGreenInstrument stores a green certificate batch or green-power trade.
func (s *Accounting) CreateGreenInstrument(ctx context.Context, req *pb.CreateGreenInstrumentRequest) (*pb.GreenInstrument, error) {
	park := req.GetParkId()
	gi := req.GetInstrument()
	if gi == nil {
		gi = &pb.GreenInstrument{}
	}
	if err := authorize(ctx, auth.Write, enterpriseDataRes(park, gi.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	if err := samePath("park_id", park, gi.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	loc, err := s.Service.Location(ctx, park)
	if err != nil {
		return nil, apierr.Status(err)
	}
	in := accounting.Instrument{ID: gi.GetId(), Enterprise: gi.GetEnterpriseId(), Kind: gi.GetKind(), MWh: gi.GetMwh(), Serials: gi.GetSerials()}
	if in.From, err = period.ParseBound("from", gi.GetFrom(), loc); err != nil {
		return nil, apierr.Status(&registry.FieldError{Field: "from", Reason: err.Error()})
	}
	if in.To, err = period.ParseBound("to", gi.GetTo(), loc); err != nil {
		return nil, apierr.Status(&registry.FieldError{Field: "to", Reason: err.Error()})
	}
	if err := s.Service.CreateInstrument(ctx, park, in); err != nil {
		return nil, apierr.Status(err)
	}
	return instrumentToPB(park, in, loc), nil
}

func instrumentToPB(park string, in accounting.Instrument, loc *time.Location) *pb.GreenInstrument {
	return &pb.GreenInstrument{Id: in.ID, ParkId: park, EnterpriseId: in.Enterprise, Kind: in.Kind, Mwh: in.MWh,
		From: in.From.In(loc).Format(time.RFC3339), To: in.To.In(loc).Format(time.RFC3339), Serials: in.Serials}
}

// ListGreenInstruments lists the park's instruments overlapping [from, to).
func (s *Accounting) ListGreenInstruments(ctx context.Context, req *pb.ListGreenInstrumentsRequest) (*pb.ListGreenInstrumentsResponse, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, dataRes(park)); err != nil {
		return nil, apierr.Status(err)
	}
	loc, err := s.Service.Location(ctx, park)
	if err != nil {
		return nil, apierr.Status(err)
	}
	var from, to time.Time
	if req.GetFrom() != "" {
		if from, err = period.ParseBound("from", req.GetFrom(), loc); err != nil {
			return nil, apierr.Status(&registry.FieldError{Field: "from", Reason: err.Error()})
		}
	}
	if req.GetTo() != "" {
		if to, err = period.ParseBound("to", req.GetTo(), loc); err != nil {
			return nil, apierr.Status(&registry.FieldError{Field: "to", Reason: err.Error()})
		}
	}
	ins, err := s.Service.Inputs.ListInstruments(ctx, park, from, to)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListGreenInstrumentsResponse{Instruments: mapSlice(ins, func(in accounting.Instrument) *pb.GreenInstrument { return instrumentToPB(park, in, loc) })}, nil
}

// meterWriteRes authorizes an operation on one meter by its enterprise.
func (s *Accounting) meterAccess(ctx context.Context, a auth.Access, park, meter string) error {
	if err := authorize(ctx, auth.Read, parkRes(park)); err != nil {
		return err
	}
	m, err := s.Service.Registry.GetMeter(ctx, park, meter)
	if err != nil {
		return err
	}
	return authorize(ctx, a, meterRes(park, m.EnterpriseID))
}

// CreateReplacement records a meter replacement.
func (s *Accounting) CreateReplacement(ctx context.Context, req *pb.CreateReplacementRequest) (*pb.Replacement, error) {
	park, meter := req.GetParkId(), req.GetMeterId()
	if err := s.meterAccess(ctx, auth.Write, park, meter); err != nil {
		return nil, apierr.Status(err)
	}
	body := req.GetReplacement()
	if body == nil {
		body = &pb.Replacement{}
	}
	for _, c := range [][3]string{{"park_id", park, body.GetParkId()}, {"meter_id", meter, body.GetMeterId()}} {
		if err := samePath(c[0], c[1], c[2]); err != nil {
			return nil, apierr.Status(err)
		}
	}
	at, err := time.Parse(time.RFC3339Nano, body.GetAt())
	if err != nil {
		return nil, apierr.Status(&registry.FieldError{Field: "at", Reason: "must be an RFC 3339 time"})
	}
	r := accounting.Replacement{At: at, OldFinal: body.GetOldFinal(), NewInitial: body.GetNewInitial()}
	if err := s.Service.AddReplacement(ctx, park, meter, r); err != nil {
		return nil, apierr.Status(err)
	}
	return replacementToPB(park, meter, r), nil
}

func replacementToPB(park, meter string, r accounting.Replacement) *pb.Replacement {
	return &pb.Replacement{ParkId: park, MeterId: meter, At: r.At.UTC().Format(time.RFC3339Nano), OldFinal: r.OldFinal, NewInitial: r.NewInitial}
}

// ListReplacements lists a meter's replacement records.
func (s *Accounting) ListReplacements(ctx context.Context, req *pb.ListReplacementsRequest) (*pb.ListReplacementsResponse, error) {
	park, meter := req.GetParkId(), req.GetMeterId()
	if err := s.meterAccess(ctx, auth.Read, park, meter); err != nil {
		return nil, apierr.Status(err)
	}
	rs, err := s.Service.Inputs.ListReplacements(ctx, park, meter)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListReplacementsResponse{Replacements: mapSlice(rs, func(r accounting.Replacement) *pb.Replacement { return replacementToPB(park, meter, r) })}, nil
}

// ---- indicators ----

func (s *Accounting) parkRange(ctx context.Context, park, from, to string) (*time.Location, time.Time, time.Time, error) {
	loc, err := s.Service.Location(ctx, park)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	f, t, err := period.Range(from, to, loc, maxIndicatorSpan)
	if err != nil {
		return nil, time.Time{}, time.Time{}, &registry.FieldError{Field: "from", Reason: err.Error()}
	}
	return loc, f, t, nil
}

// GetIndicators computes the park's (or one enterprise's) accounts for a period.
func (s *Accounting) GetIndicators(ctx context.Context, req *pb.GetIndicatorsRequest) (*pb.Indicators, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, enterpriseDataRes(park, req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	loc, from, to, err := s.parkRange(ctx, park, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, apierr.Status(err)
	}
	res, err := s.Service.Indicators(ctx, park, from, to, req.GetRule(), req.GetEnterpriseId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return indicatorsToPB(park, res, loc), nil
}

// GetSeries returns a chart series from the rollups.
func (s *Accounting) GetSeries(ctx context.Context, req *pb.GetSeriesRequest) (*pb.Series, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, enterpriseDataRes(park, req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	loc, from, to, err := s.parkRange(ctx, park, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, apierr.Status(err)
	}
	pts, err := s.Service.Series(ctx, park, req.GetEnterpriseId(), req.GetMetric(), from, to, req.GetStep())
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.Series{ParkId: park, Metric: req.GetMetric(), Step: req.GetStep(), Unit: accountsvc.SeriesUnit(req.GetMetric())}
	for _, p := range pts {
		out.Points = append(out.Points, &pb.SeriesPoint{Ts: p.Start.In(loc).Format(time.RFC3339), Value: p.Value})
	}
	return out, nil
}
