package grpcapi

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/parkcarbon/parkcarbon/pkg/alertsvc"
	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Alerting serves AlertingService.
type Alerting struct {
	pb.UnimplementedAlertingServiceServer
	Service *alertsvc.Service
}

var _ pb.AlertingServiceServer = (*Alerting)(nil)

func parseDur(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &registry.FieldError{Field: field, Reason: "not a duration like 90s, 5m or 24h: " + s}
	}
	return d, nil
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &registry.FieldError{Field: field, Reason: "not an RFC 3339 time: " + s}
	}
	return t, nil
}

func ruleFromPB(park string, r *pb.AlertRule) (alerting.Rule, error) {
	out := alerting.Rule{
		ID: r.GetId(), ParkID: park, Name: r.GetName(), Kind: r.GetKind(), EnterpriseID: r.GetEnterpriseId(), MeterID: r.GetMeterId(),
		Metric: r.GetMetric(), Op: r.GetOp(), Threshold: r.GetThreshold(), Clear: r.Clear, Compare: r.GetCompare(),
		Qualities: r.GetQualities(), BudgetT: r.GetBudgetT(), Trajectory: r.GetTrajectory(), MonthlyBudgetT: r.GetMonthlyBudgetT(),
		Severity: r.GetSeverity(), Labels: r.GetLabels(), Endpoints: r.GetEndpoints(), Disabled: r.GetDisabled(),
	}
	var err error
	for _, d := range []struct {
		field string
		in    string
		out   *time.Duration
	}{{"window", r.GetWindow(), &out.Window}, {"for", r.GetFor(), &out.For}, {"keep_firing_for", r.GetKeepFiringFor(), &out.KeepFiringFor},
		{"repeat_interval", r.GetRepeatInterval(), &out.RepeatInterval}} {
		if *d.out, err = parseDur(d.field, d.in); err != nil {
			return out, err
		}
	}
	return out, nil
}

func ruleToPB(r alerting.Rule) *pb.AlertRule {
	return &pb.AlertRule{
		Id: r.ID, ParkId: r.ParkID, Name: r.Name, Kind: r.Kind, EnterpriseId: r.EnterpriseID, MeterId: r.MeterID, Metric: r.Metric,
		Op: r.Op, Threshold: r.Threshold, Clear: r.Clear, Window: durString(r.Window), For: durString(r.For),
		KeepFiringFor: durString(r.KeepFiringFor), Compare: r.Compare, Qualities: r.Qualities, BudgetT: r.BudgetT,
		Trajectory: r.Trajectory, MonthlyBudgetT: r.MonthlyBudgetT, Severity: r.Severity, Labels: r.Labels,
		Endpoints: r.Endpoints, RepeatInterval: durString(r.RepeatInterval), Disabled: r.Disabled,
	}
}

func alertToPB(a alerting.Alert, silenced bool) *pb.Alert {
	return &pb.Alert{
		Id: a.ID, RuleId: a.RuleID, ParkId: a.ParkID, Labels: maps.Clone(a.Labels), Severity: a.Severity, State: a.State,
		Value: a.Value, Summary: a.Summary, PendingSince: timeString(a.PendingSince), FiredAt: timeString(a.FiredAt),
		ResolvedAt: timeString(a.ResolvedAt), Flapping: a.Flapping, Silenced: silenced, AckedBy: a.AckedBy,
		AckComment: a.AckComment, AckedAt: timeString(a.AckedAt), EvaluatedAt: timeString(a.EvaluatedAt),
	}
}

// CreateAlertRule stores a new rule.
func (s *Alerting) CreateAlertRule(ctx context.Context, req *pb.CreateAlertRuleRequest) (*pb.AlertRule, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	if err := samePath("park_id", req.GetParkId(), req.GetRule().GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	r, err := ruleFromPB(req.GetParkId(), req.GetRule())
	if err != nil {
		return nil, apierr.Status(err)
	}
	if r, err = s.Service.CreateRule(ctx, r); err != nil {
		return nil, apierr.Status(err)
	}
	return ruleToPB(r), nil
}

// GetAlertRule returns one rule.
func (s *Alerting) GetAlertRule(ctx context.Context, req *pb.GetAlertRuleRequest) (*pb.AlertRule, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	r, err := s.Service.Store.GetRule(ctx, req.GetParkId(), req.GetRuleId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return ruleToPB(r), nil
}

// ListAlertRules lists a park's rules.
func (s *Alerting) ListAlertRules(ctx context.Context, req *pb.ListAlertRulesRequest) (*pb.ListAlertRulesResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	rs, err := s.Service.Store.ListRules(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListAlertRulesResponse{Rules: mapSlice(rs, ruleToPB)}, nil
}

// UpdateAlertRule replaces a rule.
func (s *Alerting) UpdateAlertRule(ctx context.Context, req *pb.UpdateAlertRuleRequest) (*pb.AlertRule, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	for _, c := range [][3]string{{"park_id", req.GetParkId(), req.GetRule().GetParkId()}, {"id", req.GetRuleId(), req.GetRule().GetId()}} {
		if err := samePath(c[0], c[1], c[2]); err != nil {
			return nil, apierr.Status(err)
		}
	}
	r, err := ruleFromPB(req.GetParkId(), req.GetRule())
	if err != nil {
		return nil, apierr.Status(err)
	}
	r.ID = req.GetRuleId()
	if r, err = s.Service.UpdateRule(ctx, r); err != nil {
		return nil, apierr.Status(err)
	}
	return ruleToPB(r), nil
}

// DeleteAlertRule deletes a rule and its alerts; their history stays.
func (s *Alerting) DeleteAlertRule(ctx context.Context, req *pb.DeleteAlertRuleRequest) (*pb.DeleteAlertRuleResponse, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	if err := s.Service.Store.DeleteRule(ctx, req.GetParkId(), req.GetRuleId(), auth.PrincipalFrom(ctx).Actor()); err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.DeleteAlertRuleResponse{}, nil
}

// ListAlerts lists a park's alerts, newest change first.
func (s *Alerting) ListAlerts(ctx context.Context, req *pb.ListAlertsRequest) (*pb.ListAlertsResponse, error) {
	park := req.GetParkId()
	if err := authorize(ctx, auth.Read, enterpriseDataRes(park, req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	f := alerting.AlertFilter{ParkID: park, Severity: req.GetSeverity(), RuleID: req.GetRuleId(), Enterprise: req.GetEnterpriseId(), Limit: int(req.GetLimit())}
	if req.GetState() != "" {
		for _, st := range strings.Split(req.GetState(), ",") {
			switch st {
			case alerting.StateInactive, alerting.StatePending, alerting.StateFiring, alerting.StateResolved:
				f.States = append(f.States, st)
			default:
				return nil, apierr.Status(&registry.FieldError{Field: "state", Reason: st + " is not pending, firing, resolved or inactive"})
			}
		}
	}
	var err error
	if f.Since, err = parseTime("since", req.GetSince()); err != nil {
		return nil, apierr.Status(err)
	}
	if f.Until, err = parseTime("until", req.GetUntil()); err != nil {
		return nil, apierr.Status(err)
	}
	as, err := s.Service.Store.ListAlerts(ctx, f)
	if err != nil {
		return nil, apierr.Status(err)
	}
	sils, err := s.Service.Store.ListSilences(ctx, park)
	if err != nil {
		return nil, apierr.Status(err)
	}
	now := time.Now()
	out := &pb.ListAlertsResponse{}
	for _, a := range as {
		out.Alerts = append(out.Alerts, alertToPB(a, alerting.Silenced(sils, a.Labels, now)))
	}
	return out, nil
}

// alertAccess loads an alert and authorizes access to its park.
func (s *Alerting) alertAccess(ctx context.Context, a auth.Access, id string) (alerting.Alert, error) {
	if p := auth.PrincipalFrom(ctx); p == nil {
		return alerting.Alert{}, auth.ErrUnauthenticated
	}
	al, err := s.Service.Store.GetAlert(ctx, id)
	if err != nil {
		return alerting.Alert{}, err
	}
	return al, authorize(ctx, a, enterpriseDataRes(al.ParkID, al.Labels["enterprise"]))
}

// GetAlert returns one alert.
func (s *Alerting) GetAlert(ctx context.Context, req *pb.GetAlertRequest) (*pb.Alert, error) {
	a, err := s.alertAccess(ctx, auth.Read, req.GetAlertId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	silenced, err := s.Service.IsSilenced(ctx, a)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return alertToPB(a, silenced), nil
}

// AckAlert acknowledges a pending or firing alert.
func (s *Alerting) AckAlert(ctx context.Context, req *pb.AckAlertRequest) (*pb.Alert, error) {
	a, err := s.alertAccess(ctx, auth.Write, req.GetAlertId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Write, dataRes(a.ParkID)); err != nil {
		return nil, apierr.Status(err)
	}
	if a, err = s.Service.Ack(ctx, req.GetAlertId(), req.GetComment()); err != nil {
		return nil, apierr.Status(err)
	}
	return alertToPB(a, false), nil
}

// ListAlertHistory lists alert state changes, newest first.
func (s *Alerting) ListAlertHistory(ctx context.Context, req *pb.ListAlertHistoryRequest) (*pb.ListAlertHistoryResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	since, err := parseTime("since", req.GetSince())
	if err != nil {
		return nil, apierr.Status(err)
	}
	hs, err := s.Service.Store.ListHistory(ctx, req.GetParkId(), req.GetAlertId(), since, int(req.GetLimit()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.ListAlertHistoryResponse{}
	for _, h := range hs {
		out.Entries = append(out.Entries, &pb.AlertHistoryEntry{AlertId: h.AlertID, RuleId: h.RuleID, Labels: h.Labels, Kind: h.Kind,
			State: h.State, Value: h.Value, At: timeString(h.At), Detail: h.Detail})
	}
	return out, nil
}

// FeedEventToPB converts a live-feed event; SSE uses it too.
func FeedEventToPB(e alertsvc.FeedEvent) *pb.AlertEvent {
	return &pb.AlertEvent{Kind: e.Kind, Alert: alertToPB(e.Alert, e.Silenced), RuleName: e.RuleName, At: timeString(e.At)}
}

// WatchAlerts streams a park's alert events until the client goes away.
func (s *Alerting) WatchAlerts(req *pb.WatchAlertsRequest, stream pb.AlertingService_WatchAlertsServer) error {
	ctx := stream.Context()
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return apierr.Status(err)
	}
	if _, err := s.Service.Registry.GetPark(ctx, req.GetParkId()); err != nil {
		return apierr.Status(err)
	}
	events, cancel := s.Service.Hub.Subscribe(req.GetParkId())
	defer cancel()
	// The first message says the subscription stands: what follows is live.
	if err := stream.Send(&pb.AlertEvent{Kind: "subscribed", At: timeString(time.Now())}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return nil
			}
			if err := stream.Send(FeedEventToPB(e)); err != nil {
				return err
			}
		}
	}
}

func silenceToPB(sl alerting.Silence, now time.Time) *pb.Silence {
	out := &pb.Silence{Id: sl.ID, ParkId: sl.ParkID, StartsAt: timeString(sl.StartsAt), EndsAt: timeString(sl.EndsAt),
		CreatedBy: sl.CreatedBy, Comment: sl.Comment, Active: sl.Active(now)}
	for _, m := range sl.Matchers {
		out.Matchers = append(out.Matchers, &pb.SilenceMatcher{Name: m.Name, Value: m.Value, Regex: m.Regex})
	}
	return out
}

// CreateSilence mutes matching alerts' notifications for a time window.
func (s *Alerting) CreateSilence(ctx context.Context, req *pb.CreateSilenceRequest) (*pb.Silence, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	in := req.GetSilence()
	if err := samePath("park_id", req.GetParkId(), in.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	sl := alerting.Silence{ID: in.GetId(), ParkID: req.GetParkId(), Comment: in.GetComment()}
	for _, m := range in.GetMatchers() {
		sl.Matchers = append(sl.Matchers, alerting.Matcher{Name: m.GetName(), Value: m.GetValue(), Regex: m.GetRegex()})
	}
	var err error
	if sl.StartsAt, err = parseTime("starts_at", in.GetStartsAt()); err != nil {
		return nil, apierr.Status(err)
	}
	if sl.EndsAt, err = parseTime("ends_at", in.GetEndsAt()); err != nil {
		return nil, apierr.Status(err)
	}
	if sl, err = s.Service.CreateSilence(ctx, sl); err != nil {
		return nil, apierr.Status(err)
	}
	return silenceToPB(sl, time.Now()), nil
}

// ListSilences lists a park's silences, active and expired.
func (s *Alerting) ListSilences(ctx context.Context, req *pb.ListSilencesRequest) (*pb.ListSilencesResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	sils, err := s.Service.Store.ListSilences(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	now := time.Now()
	return &pb.ListSilencesResponse{Silences: mapSlice(sils, func(sl alerting.Silence) *pb.Silence { return silenceToPB(sl, now) })}, nil
}

// ExpireSilence ends a silence now.
func (s *Alerting) ExpireSilence(ctx context.Context, req *pb.ExpireSilenceRequest) (*pb.Silence, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	now := time.Now()
	if err := s.Service.Store.ExpireSilence(ctx, req.GetParkId(), req.GetSilenceId(), now, auth.PrincipalFrom(ctx).Actor()); err != nil {
		return nil, apierr.Status(err)
	}
	sils, err := s.Service.Store.ListSilences(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	for _, sl := range sils {
		if sl.ID == req.GetSilenceId() {
			return silenceToPB(sl, now), nil
		}
	}
	return nil, apierr.Status(registry.ErrNotFound)
}

// endpointToPB never returns the secret.
func endpointToPB(e alerting.Endpoint) *pb.NotificationEndpoint {
	return &pb.NotificationEndpoint{Id: e.ID, ParkId: e.ParkID, Kind: e.Kind, Url: e.URL, To: e.To}
}

// CreateNotificationEndpoint stores a webhook or email endpoint.
func (s *Alerting) CreateNotificationEndpoint(ctx context.Context, req *pb.CreateNotificationEndpointRequest) (*pb.NotificationEndpoint, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	in := req.GetEndpoint()
	if err := samePath("park_id", req.GetParkId(), in.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	e := alerting.Endpoint{ID: in.GetId(), ParkID: req.GetParkId(), Kind: in.GetKind(), URL: in.GetUrl(), Secret: in.GetSecret(), To: in.GetTo()}
	if err := s.Service.CreateEndpoint(ctx, e); err != nil {
		return nil, apierr.Status(err)
	}
	return endpointToPB(e), nil
}

// ListNotificationEndpoints lists a park's endpoints, without their secrets.
func (s *Alerting) ListNotificationEndpoints(ctx context.Context, req *pb.ListNotificationEndpointsRequest) (*pb.ListNotificationEndpointsResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	eps, err := s.Service.Store.ListEndpoints(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListNotificationEndpointsResponse{Endpoints: mapSlice(eps, endpointToPB)}, nil
}

// DeleteNotificationEndpoint deletes an endpoint.
func (s *Alerting) DeleteNotificationEndpoint(ctx context.Context, req *pb.DeleteNotificationEndpointRequest) (*pb.DeleteNotificationEndpointResponse, error) {
	if err := authorize(ctx, auth.Write, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	if err := s.Service.Store.DeleteEndpoint(ctx, req.GetParkId(), req.GetEndpointId(), auth.PrincipalFrom(ctx).Actor()); err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.DeleteNotificationEndpointResponse{}, nil
}

// ListDeliveries lists notification attempts, newest first.
func (s *Alerting) ListDeliveries(ctx context.Context, req *pb.ListDeliveriesRequest) (*pb.ListDeliveriesResponse, error) {
	if err := authorize(ctx, auth.Read, dataRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	ds, err := s.Service.Store.ListDeliveries(ctx, req.GetParkId(), req.GetAlertId(), int(req.GetLimit()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := &pb.ListDeliveriesResponse{}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, &pb.Delivery{Id: d.ID, EndpointId: d.EndpointID, AlertId: d.AlertID, Event: d.Event,
			Attempt: int32(d.Attempt), At: timeString(d.At), Ok: d.OK, Status: d.Status, Error: d.Error, DurationMs: d.Duration.Milliseconds()})
	}
	return out, nil
}
