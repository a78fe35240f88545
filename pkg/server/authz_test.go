package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
)

// acc is the accounting service client of the test server.
func (ts *testServer) acc() pb.AccountingServiceClient { return pb.NewAccountingServiceClient(ts.conn) }

// alerts is the alerting service client of the test server.
func (ts *testServer) alerts() pb.AlertingServiceClient { return pb.NewAlertingServiceClient(ts.conn) }

// fixture registers two parks with enterprises, meters and gateways over REST as admin, and
// issues one token per role. Park p1: enterprises e1 and e2, meters m-e1 (e1), m-e2 (e2) and
// m-park (park level), gateway g1. Park p2: enterprise e3, meter m-p2, gateway g2.
type fixture struct {
	tokens map[string]string // role -> bearer token; "none" is empty, "bogus" unknown
}

func seed(t *testing.T, ts *testServer) fixture {
	a := testAdminToken
	for _, p := range []string{"p1", "p2"} {
		ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": p, "name": "Park " + p, "province": "Hunan"})
	}
	for _, e := range [][2]string{{"p1", "e1"}, {"p1", "e2"}, {"p2", "e3"}} {
		ts.must(201, "POST", "/api/v1/parks/"+e[0]+"/enterprises", a, map[string]any{"id": e[1], "name": "Enterprise " + e[1]})
	}
	for _, g := range [][2]string{{"p1", "g1"}, {"p2", "g2"}} {
		ts.must(201, "POST", "/api/v1/parks/"+g[0]+"/gateways", a, map[string]any{"id": g[1], "name": "gateway"})
	}
	for _, m := range [][4]string{{"p1", "m-e1", "e1", "g1"}, {"p1", "m-e2", "e2", "g1"}, {"p1", "m-park", "", "g1"}, {"p2", "m-p2", "e3", "g2"}} {
		ts.must(201, "POST", "/api/v1/parks/"+m[0]+"/meters", a, map[string]any{
			"id": m[1], "enterprise_id": m[2], "gateway_id": m[3], "carrier": "electricity", "unit": "kWh"})
	}
	f := fixture{tokens: map[string]string{"admin": a, "none": "", "bogus": "pct_not-a-real-token"}}
	for role, body := range map[string]map[string]any{
		"operator":   {"role": "operator", "park_ids": []string{"p1"}, "name": "ops"},
		"auditor":    {"role": "auditor", "park_ids": []string{"p1"}},
		"enterprise": {"role": "enterprise", "park_ids": []string{"p1"}, "enterprise_id": "e1"},
		"gateway":    {"role": "gateway", "park_ids": []string{"p1"}, "gateway_id": "g1"},
	} {
		out := ts.must(201, "POST", "/api/v1/tokens", a, body)
		tok, _ := out["token"].(string)
		if tok == "" {
			t.Fatalf("token response for %s has no token: %v", role, out)
		}
		f.tokens[role] = tok
	}
	return f
}

// operation is one registry, telemetry or accounting operation done over REST and over gRPC.
type operation struct {
	name    string
	allowed []string // roles allowed; "none" and "bogus" never are
	rest    func(ts *testServer, tok string, n int) int
	grpc    func(ts *testServer, ctx context.Context, n int) error
}

func restCall(method, path string, body func(n int) any) func(*testServer, string, int) int {
	return func(ts *testServer, tok string, n int) int {
		var b any
		if body != nil {
			b = body(n)
		}
		p := path
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(path, n)
		}
		code, _, _ := ts.do(method, p, tok, b)
		return code
	}
}

var (
	readers   = []string{"admin", "operator", "auditor"}
	entReader = []string{"admin", "operator", "auditor", "enterprise"}
	writers   = []string{"admin", "operator"}
	admins    = []string{"admin"}
	everyone  = []string{"admin", "operator", "auditor", "enterprise", "gateway"}
)

func meterBody(id string) map[string]any {
	return map[string]any{"id": id, "carrier": "electricity", "unit": "kWh", "enterprise_id": "e1"}
}

func operations() []operation {
	return []operation{
		{"list parks", everyone, restCall("GET", "/api/v1/parks?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListParks(ctx, &pb.ListParksRequest{})
				return err
			}},
		{"get own park", entReader, restCall("GET", "/api/v1/parks/p1?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetPark(ctx, &pb.GetParkRequest{ParkId: "p1"})
				return err
			}},
		{"get other park", admins, restCall("GET", "/api/v1/parks/p2?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetPark(ctx, &pb.GetParkRequest{ParkId: "p2"})
				return err
			}},
		{"create park", admins, restCall("POST", "/api/v1/parks", func(n int) any { return map[string]any{"id": fmt.Sprintf("new-%d", n), "name": "New"} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.CreatePark(ctx, &pb.CreateParkRequest{Park: &pb.Park{Id: fmt.Sprintf("new-%d", n), Name: "New"}})
				return err
			}},
		{"update own park", writers, restCall("PATCH", "/api/v1/parks/p1", func(n int) any { return map[string]any{"province": fmt.Sprintf("Hunan %d", n)} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.UpdatePark(ctx, &pb.UpdateParkRequest{Park: &pb.Park{Id: "p1", Province: fmt.Sprint(n)}})
				return err
			}},
		{"update other park", admins, restCall("PATCH", "/api/v1/parks/p2", func(n int) any { return map[string]any{"province": fmt.Sprintf("Hunan %d", n)} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.UpdatePark(ctx, &pb.UpdateParkRequest{Park: &pb.Park{Id: "p2", Province: fmt.Sprint(n)}})
				return err
			}},
		{"delete park", admins, func(ts *testServer, tok string, n int) int {
			id := fmt.Sprintf("del-%d", n)
			ts.must(201, "POST", "/api/v1/parks", testAdminToken, map[string]any{"id": id, "name": "Doomed"})
			code, _, _ := ts.do("DELETE", "/api/v1/parks/"+id, tok, nil)
			return code
		}, func(ts *testServer, ctx context.Context, n int) error {
			id := fmt.Sprintf("del-%d", n)
			ts.must(201, "POST", "/api/v1/parks", testAdminToken, map[string]any{"id": id, "name": "Doomed"})
			_, err := ts.reg.DeletePark(ctx, &pb.DeleteParkRequest{ParkId: id})
			return err
		}},
		{"create enterprise", writers, restCall("POST", "/api/v1/parks/p1/enterprises", func(n int) any { return map[string]any{"id": fmt.Sprintf("ne-%d", n), "name": "E"} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.CreateEnterprise(ctx, &pb.CreateEnterpriseRequest{ParkId: "p1", Enterprise: &pb.Enterprise{Id: fmt.Sprintf("ne-%d", n), Name: "E"}})
				return err
			}},
		{"get own enterprise", entReader, restCall("GET", "/api/v1/parks/p1/enterprises/e1?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetEnterprise(ctx, &pb.GetEnterpriseRequest{ParkId: "p1", EnterpriseId: "e1"})
				return err
			}},
		{"get another enterprise", readers, restCall("GET", "/api/v1/parks/p1/enterprises/e2?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetEnterprise(ctx, &pb.GetEnterpriseRequest{ParkId: "p1", EnterpriseId: "e2"})
				return err
			}},
		{"list enterprises", entReader, restCall("GET", "/api/v1/parks/p1/enterprises?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListEnterprises(ctx, &pb.ListEnterprisesRequest{ParkId: "p1"})
				return err
			}},
		{"list other park's enterprises", admins, restCall("GET", "/api/v1/parks/p2/enterprises?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListEnterprises(ctx, &pb.ListEnterprisesRequest{ParkId: "p2"})
				return err
			}},
		{"update enterprise", writers, restCall("PATCH", "/api/v1/parks/p1/enterprises/e1", func(n int) any { return map[string]any{"industry_code": fmt.Sprintf("C%d", n%100)} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.UpdateEnterprise(ctx, &pb.UpdateEnterpriseRequest{ParkId: "p1", Enterprise: &pb.Enterprise{Id: "e1", IndustryCode: fmt.Sprintf("C%d", n%100)}})
				return err
			}},
		{"create meter", writers, restCall("POST", "/api/v1/parks/p1/meters", func(n int) any { return meterBody(fmt.Sprintf("nm-%d", n)) }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.CreateMeter(ctx, &pb.CreateMeterRequest{ParkId: "p1", Meter: &pb.Meter{Id: fmt.Sprintf("nm-%d", n), Carrier: "electricity", Unit: "kWh", EnterpriseId: "e1"}})
				return err
			}},
		{"create meter in other park", admins, restCall("POST", "/api/v1/parks/p2/meters", func(n int) any {
			return map[string]any{"id": fmt.Sprintf("nm-%d", n), "carrier": "electricity", "unit": "kWh"}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.reg.CreateMeter(ctx, &pb.CreateMeterRequest{ParkId: "p2", Meter: &pb.Meter{Id: fmt.Sprintf("nm-%d", n), Carrier: "electricity", Unit: "kWh"}})
			return err
		}},
		{"get own enterprise's meter", entReader, restCall("GET", "/api/v1/parks/p1/meters/m-e1?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetMeter(ctx, &pb.GetMeterRequest{ParkId: "p1", MeterId: "m-e1"})
				return err
			}},
		{"get another enterprise's meter", readers, restCall("GET", "/api/v1/parks/p1/meters/m-e2?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetMeter(ctx, &pb.GetMeterRequest{ParkId: "p1", MeterId: "m-e2"})
				return err
			}},
		{"get park-level meter", readers, restCall("GET", "/api/v1/parks/p1/meters/m-park?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetMeter(ctx, &pb.GetMeterRequest{ParkId: "p1", MeterId: "m-park"})
				return err
			}},
		{"get other park's meter", admins, restCall("GET", "/api/v1/parks/p2/meters/m-p2?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.GetMeter(ctx, &pb.GetMeterRequest{ParkId: "p2", MeterId: "m-p2"})
				return err
			}},
		{"list meters", entReader, restCall("GET", "/api/v1/parks/p1/meters?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListMeters(ctx, &pb.ListMetersRequest{ParkId: "p1"})
				return err
			}},
		{"list another enterprise's meters", readers, restCall("GET", "/api/v1/parks/p1/meters?enterprise_id=e2&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListMeters(ctx, &pb.ListMetersRequest{ParkId: "p1", EnterpriseId: "e2"})
				return err
			}},
		{"list other park's meters", admins, restCall("GET", "/api/v1/parks/p2/meters?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListMeters(ctx, &pb.ListMetersRequest{ParkId: "p2"})
				return err
			}},
		{"update meter", writers, restCall("PATCH", "/api/v1/parks/p1/meters/m-e1", func(n int) any { return map[string]any{"interval_seconds": 60 + n} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.UpdateMeter(ctx, &pb.UpdateMeterRequest{ParkId: "p1", Meter: &pb.Meter{Id: "m-e1", IntervalSeconds: int32(60 + n)}})
				return err
			}},
		{"create gateway", writers, restCall("POST", "/api/v1/parks/p1/gateways", func(n int) any { return map[string]any{"id": fmt.Sprintf("ng-%d", n)} }),
			func(ts *testServer, ctx context.Context, n int) error {
				_, err := ts.reg.CreateGateway(ctx, &pb.CreateGatewayRequest{ParkId: "p1", Gateway: &pb.Gateway{Id: fmt.Sprintf("ng-%d", n)}})
				return err
			}},
		{"list gateways", readers, restCall("GET", "/api/v1/parks/p1/gateways?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListGateways(ctx, &pb.ListGatewaysRequest{ParkId: "p1"})
				return err
			}},
		{"list other park's gateways", admins, restCall("GET", "/api/v1/parks/p2/gateways?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.reg.ListGateways(ctx, &pb.ListGatewaysRequest{ParkId: "p2"})
				return err
			}},
		{"list factor sets", everyone, restCall("GET", "/api/v1/factor-sets?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().ListFactorSets(ctx, &pb.ListFactorSetsRequest{})
				return err
			}},
		{"get factor set", everyone, restCall("GET", "/api/v1/factor-sets/cn-zcp-2025?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetFactorSet(ctx, &pb.GetFactorSetRequest{Id: "cn-zcp-2025"})
				return err
			}},
		{"publish factor set", admins, restCall("POST", "/api/v1/factor-sets", func(n int) any {
			return map[string]any{"id": fmt.Sprintf("site-%d", n), "version": 1, "base": "cn-zcp-2025/1", "effective_from": "2026-01-01",
				"rule": "site rule", "method": "park", "electricity_convention": "equal"}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.acc().PublishFactorSet(ctx, &pb.PublishFactorSetRequest{FactorSet: &pb.FactorSet{Id: fmt.Sprintf("site-%d", n), Version: 1, Base: "cn-zcp-2025/1", EffectiveFrom: "2026-01-01",
				Rule: "site rule", Method: "park", ElectricityConvention: "equal"}})
			return err
		}},
		{"put value added", writers, restCall("PUT", "/api/v1/parks/p1/enterprises/e1/value-added/2026-01", func(n int) any {
			return map[string]any{"nominal_10k_cny": n, "real_growth_index": 1, "base_year": 2026}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.acc().PutValueAdded(ctx, &pb.PutValueAddedRequest{ParkId: "p1", EnterpriseId: "e1", Month: "2026-01",
				ValueAdded: &pb.ValueAdded{Nominal_10KCny: float64(n), RealGrowthIndex: 1, BaseYear: 2026}})
			return err
		}},
		{"list park value added", readers, restCall("GET", "/api/v1/parks/p1/value-added?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().ListValueAdded(ctx, &pb.ListValueAddedRequest{ParkId: "p1"})
				return err
			}},
		{"list own value added", entReader, restCall("GET", "/api/v1/parks/p1/enterprises/e1/value-added?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().ListValueAdded(ctx, &pb.ListValueAddedRequest{ParkId: "p1", EnterpriseId: "e1"})
				return err
			}},
		{"put process output", writers, restCall("PUT", "/api/v1/parks/p1/enterprises/e2/process-output/2026-01", func(n int) any {
			return map[string]any{"product": "lime", "tonnes": n}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.acc().PutProcessOutput(ctx, &pb.PutProcessOutputRequest{ParkId: "p1", EnterpriseId: "e2", Month: "2026-01",
				ProcessOutput: &pb.ProcessOutput{Product: "lime", Tonnes: float64(n)}})
			return err
		}},
		{"list green instruments", readers, restCall("GET", "/api/v1/parks/p1/green-instruments?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().ListGreenInstruments(ctx, &pb.ListGreenInstrumentsRequest{ParkId: "p1"})
				return err
			}},
		{"record replacement", writers, restCall("POST", "/api/v1/parks/p1/meters/m-e1/replacements", func(n int) any {
			return map[string]any{"at": fmt.Sprintf("2026-01-01T%02d:00:00Z", n%24), "old_final": 10, "new_initial": 0}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.acc().CreateReplacement(ctx, &pb.CreateReplacementRequest{ParkId: "p1", MeterId: "m-e1",
				Replacement: &pb.Replacement{At: fmt.Sprintf("2026-01-02T%02d:00:00Z", n%24), OldFinal: 10}})
			return err
		}},
		{"list own meter's replacements", entReader, restCall("GET", "/api/v1/parks/p1/meters/m-e1/replacements?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().ListReplacements(ctx, &pb.ListReplacementsRequest{ParkId: "p1", MeterId: "m-e1"})
				return err
			}},
		{"park indicators", readers, restCall("GET", "/api/v1/parks/p1/indicators?from=2026-01-01&to=2026-01-02&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetIndicators(ctx, &pb.GetIndicatorsRequest{ParkId: "p1", From: "2026-01-01", To: "2026-01-02"})
				return err
			}},
		{"own enterprise indicators", entReader, restCall("GET", "/api/v1/parks/p1/indicators?enterprise=e1&from=2026-01-01&to=2026-01-02&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetIndicators(ctx, &pb.GetIndicatorsRequest{ParkId: "p1", EnterpriseId: "e1", From: "2026-01-01", To: "2026-01-02"})
				return err
			}},
		{"another enterprise's indicators", readers, restCall("GET", "/api/v1/parks/p1/indicators?enterprise=e2&from=2026-01-01&to=2026-01-02&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetIndicators(ctx, &pb.GetIndicatorsRequest{ParkId: "p1", EnterpriseId: "e2", From: "2026-01-01", To: "2026-01-02"})
				return err
			}},
		{"other park's indicators", admins, restCall("GET", "/api/v1/parks/p2/indicators?from=2026-01-01&to=2026-01-02&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetIndicators(ctx, &pb.GetIndicatorsRequest{ParkId: "p2", From: "2026-01-01", To: "2026-01-02"})
				return err
			}},
		{"park series", readers, restCall("GET", "/api/v1/parks/p1/series?metric=co2&step=1h&from=2026-01-01&to=2026-01-02&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.acc().GetSeries(ctx, &pb.GetSeriesRequest{ParkId: "p1", Metric: "co2", Step: "1h", From: "2026-01-01", To: "2026-01-02"})
				return err
			}},
		{"create alert rule", writers, restCall("POST", "/api/v1/parks/p1/alert-rules", func(n int) any {
			return map[string]any{"id": fmt.Sprintf("r-%d", n), "name": "silent", "kind": "no_data", "op": ">", "threshold": 3, "severity": "warning"}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.alerts().CreateAlertRule(ctx, &pb.CreateAlertRuleRequest{ParkId: "p1", Rule: &pb.AlertRule{Id: fmt.Sprintf("r-%d", n),
				Name: "silent", Kind: "no_data", Op: ">", Threshold: 3, Severity: "warning"}})
			return err
		}},
		{"list alert rules", readers, restCall("GET", "/api/v1/parks/p1/alert-rules?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListAlertRules(ctx, &pb.ListAlertRulesRequest{ParkId: "p1"})
				return err
			}},
		{"list alerts", readers, restCall("GET", "/api/v1/parks/p1/alerts?state=firing&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListAlerts(ctx, &pb.ListAlertsRequest{ParkId: "p1", State: "firing"})
				return err
			}},
		{"list own enterprise's alerts", entReader, restCall("GET", "/api/v1/parks/p1/alerts?enterprise=e1&n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListAlerts(ctx, &pb.ListAlertsRequest{ParkId: "p1", EnterpriseId: "e1"})
				return err
			}},
		{"list other park's alerts", admins, restCall("GET", "/api/v1/parks/p2/alerts?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListAlerts(ctx, &pb.ListAlertsRequest{ParkId: "p2"})
				return err
			}},
		{"create silence", writers, restCall("POST", "/api/v1/parks/p1/silences", func(n int) any {
			return map[string]any{"matchers": []map[string]any{{"name": "rule", "value": fmt.Sprint(n)}}, "ends_at": time.Now().Add(24 * time.Hour).Format(time.RFC3339), "comment": "test"}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.alerts().CreateSilence(ctx, &pb.CreateSilenceRequest{ParkId: "p1", Silence: &pb.Silence{
				Matchers: []*pb.SilenceMatcher{{Name: "rule", Value: fmt.Sprint(n)}}, EndsAt: "2026-12-31T00:00:00Z", StartsAt: "2026-12-01T00:00:00Z", Comment: "test"}})
			return err
		}},
		{"list silences", readers, restCall("GET", "/api/v1/parks/p1/silences?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListSilences(ctx, &pb.ListSilencesRequest{ParkId: "p1"})
				return err
			}},
		{"create notification endpoint", writers, restCall("POST", "/api/v1/parks/p1/notification-endpoints", func(n int) any {
			return map[string]any{"id": fmt.Sprintf("ep-%d", n), "kind": "email", "to": []string{"ops@park.example"}}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.alerts().CreateNotificationEndpoint(ctx, &pb.CreateNotificationEndpointRequest{ParkId: "p1",
				Endpoint: &pb.NotificationEndpoint{Id: fmt.Sprintf("ep-%d", n), Kind: "email", To: []string{"ops@park.example"}}})
			return err
		}},
		{"list deliveries", readers, restCall("GET", "/api/v1/parks/p1/deliveries?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListDeliveries(ctx, &pb.ListDeliveriesRequest{ParkId: "p1"})
				return err
			}},
		{"alert history", readers, restCall("GET", "/api/v1/parks/p1/alert-history?n=%d", nil),
			func(ts *testServer, ctx context.Context, _ int) error {
				_, err := ts.alerts().ListAlertHistory(ctx, &pb.ListAlertHistoryRequest{ParkId: "p1"})
				return err
			}},
		{"create token", admins, restCall("POST", "/api/v1/tokens", func(n int) any {
			return map[string]any{"role": "auditor", "park_ids": []string{"p1"}, "name": fmt.Sprint(n)}
		}), func(ts *testServer, ctx context.Context, n int) error {
			_, err := ts.tokens.CreateToken(ctx, &pb.CreateTokenRequest{Role: "auditor", ParkIds: []string{"p1"}, Name: fmt.Sprint(n)})
			return err
		}},
	}
}

// TestAuthorizationMatrix runs every registry operation as every role over both transports
// and checks allowed calls succeed, out-of-scope calls get 403 / PermissionDenied, and calls
// without a valid token get 401 / Unauthenticated.
func TestAuthorizationMatrix(t *testing.T) {
	db := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL, cfg.Influx.Bucket = db.URL, db.Bucket
	ts := startServer(t, cfg)
	f := seed(t, ts)
	roles := []string{"none", "bogus", "admin", "operator", "auditor", "enterprise", "gateway"}
	n, cases := 0, 0
	for _, op := range operations() {
		for _, role := range roles {
			wantCode, wantHTTP := codes.PermissionDenied, 403
			switch {
			case role == "none" || role == "bogus":
				wantCode, wantHTTP = codes.Unauthenticated, 401
			case slices.Contains(op.allowed, role):
				wantCode, wantHTTP = codes.OK, 0
			}
			t.Run(op.name+"/"+role+"/rest", func(t *testing.T) {
				n++
				cases++
				code := op.rest(ts, f.tokens[role], n)
				if wantHTTP == 0 && (code < 200 || code > 299) || wantHTTP != 0 && code != wantHTTP {
					t.Errorf("status %d, want %s", code, httpWant(wantHTTP))
				}
			})
			t.Run(op.name+"/"+role+"/grpc", func(t *testing.T) {
				n++
				cases++
				err := op.grpc(ts, withToken(f.tokens[role]), n)
				if got := status.Code(err); got != wantCode {
					t.Errorf("code %v (%v), want %v", got, err, wantCode)
				}
			})
		}
	}
	t.Logf("authorization matrix: %d operations x %d principals x 2 transports = %d cases", len(operations()), len(roles), cases)
}

func httpWant(c int) string {
	if c == 0 {
		return "2xx"
	}
	return fmt.Sprint(c)
}

// TestScopedListsAreFiltered checks that what a scoped token lists is only what it may see.
func TestScopedListsAreFiltered(t *testing.T) {
	ts := startServer(t, testConfig(t))
	f := seed(t, ts)
	ids := func(out map[string]any, key string) []string {
		var got []string
		items, _ := out[key].([]any)
		for _, it := range items {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		slices.Sort(got)
		return got
	}
	for _, tt := range []struct {
		role, path, key string
		want            []string
	}{
		{"enterprise", "/api/v1/parks/p1/meters", "meters", []string{"m-e1"}},
		{"enterprise", "/api/v1/parks/p1/enterprises", "enterprises", []string{"e1"}},
		{"operator", "/api/v1/parks/p1/meters", "meters", []string{"m-e1", "m-e2", "m-park"}},
		{"operator", "/api/v1/parks", "parks", []string{"p1"}},
		{"auditor", "/api/v1/parks", "parks", []string{"p1"}},
		{"gateway", "/api/v1/parks", "parks", nil},
		{"admin", "/api/v1/parks", "parks", []string{"p1", "p2"}},
	} {
		out := ts.must(200, "GET", tt.path, f.tokens[tt.role], nil)
		if got := ids(out, tt.key); !slices.Equal(got, tt.want) {
			t.Errorf("%s GET %s: %v, want %v", tt.role, tt.path, got, tt.want)
		}
	}
	// Over gRPC too.
	resp, err := ts.reg.ListMeters(withToken(f.tokens["enterprise"]), &pb.ListMetersRequest{ParkId: "p1"})
	if err != nil || len(resp.GetMeters()) != 1 || resp.GetMeters()[0].GetId() != "m-e1" {
		t.Fatalf("enterprise ListMeters over gRPC = %v, %v; want only m-e1", resp, err)
	}
}
