package grpcapi

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/period"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Readings queries stored readings.
type Readings interface {
	Readings(ctx context.Context, park, meter string, from, to time.Time) ([]influx.Sample, error)
	CountByDay(ctx context.Context, park string, from, to time.Time, loc *time.Location) ([]influx.DayCount, error)
}

// TelemetryLedger reads what the collectors recorded besides readings.
type TelemetryLedger interface {
	ListDeadLetters(ctx context.Context, f sqlstore.DeadLetterFilter) ([]telemetry.DeadLetter, error)
	GatewaySeqs(ctx context.Context, park string) ([]telemetry.GatewaySeq, error)
}

// Telemetry serves TelemetryService.
type Telemetry struct {
	pb.UnimplementedTelemetryServiceServer
	Registry *registry.Service
	Readings Readings
	Ledger   TelemetryLedger
}

var _ pb.TelemetryServiceServer = (*Telemetry)(nil)

const (
	maxReadingsSpan     = 92 * 24 * time.Hour  // a quarter of raw readings per request
	maxCompletenessSpan = 366 * 24 * time.Hour // a year of daily counts
)

func dataRes(park string) auth.Resource { return auth.Resource{Kind: auth.KindParkData, ParkID: park} }

// parkRange parses from/to in the park's time zone.
func (s *Telemetry) parkRange(ctx context.Context, park, from, to string, maxSpan time.Duration) (*time.Location, time.Time, time.Time, error) {
	p, err := s.Registry.GetPark(ctx, park)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	f, t, err := period.Range(from, to, loc, maxSpan)
	if err != nil {
		return nil, time.Time{}, time.Time{}, &registry.FieldError{Field: "from", Reason: err.Error()}
	}
	return loc, f, t, nil
}

// ListReadings returns a meter's stored readings in [from, to).
func (s *Telemetry) ListReadings(ctx context.Context, req *pb.ListReadingsRequest) (*pb.ListReadingsResponse, error) {
	if err := authorize(ctx, auth.Read, parkRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	m, err := s.Registry.GetMeter(ctx, req.GetParkId(), req.GetMeterId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Read, meterRes(m.ParkID, m.EnterpriseID)); err != nil {
		return nil, apierr.Status(err)
	}
	loc, from, to, err := s.parkRange(ctx, req.GetParkId(), req.GetFrom(), req.GetTo(), maxReadingsSpan)
	if err != nil {
		return nil, apierr.Status(err)
	}
	samples, err := s.Readings.Readings(ctx, m.ParkID, m.ID, from, to)
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.ListReadingsResponse{ParkId: m.ParkID, MeterId: m.ID, Unit: m.Unit, Readings: make([]*pb.StoredReading, len(samples))}
	for i, r := range samples {
		out.Readings[i] = &pb.StoredReading{Ts: r.TS.In(loc).Format(time.RFC3339Nano), Value: r.Value}
	}
	return out, nil
}

// ListDeadLetters returns a park's dead letters, newest first.
func (s *Telemetry) ListDeadLetters(ctx context.Context, req *pb.ListDeadLettersRequest) (*pb.ListDeadLettersResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	f := sqlstore.DeadLetterFilter{Park: req.GetParkId(), Limit: int(req.GetPageSize())}
	if tok := req.GetPageToken(); tok != "" {
		before, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			return nil, apierr.Status(&registry.FieldError{Field: "page_token", Reason: "is not a token from a previous page"})
		}
		f.Before = before
	}
	if f.Limit <= 0 || f.Limit > registry.MaxPageSize {
		f.Limit = registry.MaxPageSize
	}
	dead, err := s.Ledger.ListDeadLetters(ctx, f)
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.ListDeadLettersResponse{DeadLetters: make([]*pb.DeadLetter, len(dead))}
	for i, d := range dead {
		out.DeadLetters[i] = &pb.DeadLetter{Id: d.ID, ParkId: d.Park, GatewayId: d.Gateway, Topic: d.Topic, Seq: d.Seq,
			MeterId: d.Meter, Reason: d.Reason, Payload: d.Payload, PayloadBytes: int64(d.PayloadBytes),
			ReceivedAt: d.ReceivedAt.UTC().Format(time.RFC3339Nano)}
	}
	if len(dead) == f.Limit {
		out.NextPageToken = strconv.FormatInt(dead[len(dead)-1].ID, 10)
	}
	return out, nil
}

// GetCompleteness returns, per meter and calendar day, readings received over expected.
func (s *Telemetry) GetCompleteness(ctx context.Context, req *pb.GetCompletenessRequest) (*pb.GetCompletenessResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	loc, from, to, err := s.parkRange(ctx, req.GetParkId(), req.GetFrom(), req.GetTo(), maxCompletenessSpan)
	if err != nil {
		return nil, apierr.Status(err)
	}
	from, to = period.Day(from, loc), period.Day(to.Add(-time.Nanosecond), loc).AddDate(0, 0, 1)
	meters, err := s.Registry.AllMeters(ctx, registry.MeterFilter{ParkID: req.GetParkId()})
	if err != nil {
		return nil, apierr.Status(err)
	}
	counts, err := s.Readings.CountByDay(ctx, req.GetParkId(), from, to, loc)
	if err != nil {
		return nil, apierr.Status(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Meter+"|"+c.Day.Format(time.DateOnly)] += c.Count
	}
	out := &pb.GetCompletenessResponse{ParkId: req.GetParkId()}
	for _, m := range meters {
		for _, d := range period.Days(from, to, loc) {
			day := d.Format(time.DateOnly)
			secs := d.AddDate(0, 0, 1).Sub(d).Seconds() // 23, 24 or 25 hours
			expected := int64(math.Round(secs / float64(m.IntervalSeconds)))
			n := got[m.ID+"|"+day]
			ratio := 0.0
			if expected > 0 {
				ratio = float64(n) / float64(expected)
			}
			out.Days = append(out.Days, &pb.MeterDay{MeterId: m.ID, Day: day, Received: n, Expected: expected, Completeness: ratio})
		}
	}
	return out, nil
}

// ListGatewayStatus returns the batch sequence state of a park's gateways.
func (s *Telemetry) ListGatewayStatus(ctx context.Context, req *pb.ListGatewayStatusRequest) (*pb.ListGatewayStatusResponse, error) {
	if err := authorize(ctx, auth.Read, gatewayRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	seqs, err := s.Ledger.GatewaySeqs(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.ListGatewayStatusResponse{}
	for _, g := range seqs {
		st := &pb.GatewayStatus{GatewayId: g.Gateway, ContiguousSeq: g.Contiguous, MaxSeq: g.MaxSeen, Missing: g.Missing,
			Batches: g.Batches, UpdatedAt: g.UpdatedAt.UTC().Format(time.RFC3339Nano)}
		if !g.GapSince.IsZero() {
			st.GapSince = g.GapSince.UTC().Format(time.RFC3339Nano)
		}
		out.Gateways = append(out.Gateways, st)
	}
	return out, nil
}
