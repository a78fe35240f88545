package rest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
)

// registerAlerting serves alert rules, alerts, silences, notification endpoints, deliveries
// and the live feed as Server-Sent Events.
func registerAlerting(api fiber.Router, s pb.AlertingServiceServer) {
	api.Post("/parks/:park/alert-rules", handle(func(c *fiber.Ctx) (*pb.CreateAlertRuleRequest, error) {
		req := &pb.CreateAlertRuleRequest{ParkId: c.Params("park"), Rule: &pb.AlertRule{}}
		return req, decodeBody(c.Body(), req.Rule)
	}, s.CreateAlertRule, http.StatusCreated))
	api.Get("/parks/:park/alert-rules", handle(func(c *fiber.Ctx) (*pb.ListAlertRulesRequest, error) {
		return &pb.ListAlertRulesRequest{ParkId: c.Params("park")}, nil
	}, s.ListAlertRules, http.StatusOK))
	api.Get("/parks/:park/alert-rules/:id", handle(func(c *fiber.Ctx) (*pb.GetAlertRuleRequest, error) {
		return &pb.GetAlertRuleRequest{ParkId: c.Params("park"), RuleId: c.Params("id")}, nil
	}, s.GetAlertRule, http.StatusOK))
	api.Put("/parks/:park/alert-rules/:id", handle(func(c *fiber.Ctx) (*pb.UpdateAlertRuleRequest, error) {
		req := &pb.UpdateAlertRuleRequest{ParkId: c.Params("park"), RuleId: c.Params("id"), Rule: &pb.AlertRule{}}
		return req, decodeBody(c.Body(), req.Rule)
	}, s.UpdateAlertRule, http.StatusOK))
	api.Delete("/parks/:park/alert-rules/:id", handle(func(c *fiber.Ctx) (*pb.DeleteAlertRuleRequest, error) {
		return &pb.DeleteAlertRuleRequest{ParkId: c.Params("park"), RuleId: c.Params("id")}, nil
	}, s.DeleteAlertRule, http.StatusNoContent))

	api.Get("/parks/:park/alerts/stream", watchAlerts(s))
	api.Get("/parks/:park/alerts", handle(func(c *fiber.Ctx) (*pb.ListAlertsRequest, error) {
		limit, err := queryInt("limit", c.Query("limit"))
		return &pb.ListAlertsRequest{ParkId: c.Params("park"), State: c.Query("state"), Severity: c.Query("severity"),
			EnterpriseId: c.Query("enterprise"), RuleId: c.Query("rule_id"), Since: c.Query("since"), Until: c.Query("until"), Limit: limit}, err
	}, s.ListAlerts, http.StatusOK))
	api.Get("/parks/:park/alert-history", handle(func(c *fiber.Ctx) (*pb.ListAlertHistoryRequest, error) {
		limit, err := queryInt("limit", c.Query("limit"))
		return &pb.ListAlertHistoryRequest{ParkId: c.Params("park"), AlertId: c.Query("alert_id"), Since: c.Query("since"), Limit: limit}, err
	}, s.ListAlertHistory, http.StatusOK))
	api.Get("/alerts/:id", handle(func(c *fiber.Ctx) (*pb.GetAlertRequest, error) {
		return &pb.GetAlertRequest{AlertId: c.Params("id")}, nil
	}, s.GetAlert, http.StatusOK))
	api.Post("/alerts/:id/ack", handle(func(c *fiber.Ctx) (*pb.AckAlertRequest, error) {
		req := &pb.AckAlertRequest{}
		if len(c.Body()) > 0 {
			if err := decodeBody(c.Body(), req); err != nil {
				return nil, err
			}
		}
		return req, pathID(&req.AlertId, c.Params("id"), "alert_id", nil)
	}, s.AckAlert, http.StatusOK))

	api.Post("/parks/:park/silences", handle(func(c *fiber.Ctx) (*pb.CreateSilenceRequest, error) {
		req := &pb.CreateSilenceRequest{ParkId: c.Params("park"), Silence: &pb.Silence{}}
		return req, decodeBody(c.Body(), req.Silence)
	}, s.CreateSilence, http.StatusCreated))
	api.Get("/parks/:park/silences", handle(func(c *fiber.Ctx) (*pb.ListSilencesRequest, error) {
		return &pb.ListSilencesRequest{ParkId: c.Params("park")}, nil
	}, s.ListSilences, http.StatusOK))
	api.Delete("/parks/:park/silences/:id", handle(func(c *fiber.Ctx) (*pb.ExpireSilenceRequest, error) {
		return &pb.ExpireSilenceRequest{ParkId: c.Params("park"), SilenceId: c.Params("id")}, nil
	}, s.ExpireSilence, http.StatusOK))

	api.Post("/parks/:park/notification-endpoints", handle(func(c *fiber.Ctx) (*pb.CreateNotificationEndpointRequest, error) {
		req := &pb.CreateNotificationEndpointRequest{ParkId: c.Params("park"), Endpoint: &pb.NotificationEndpoint{}}
		return req, decodeBody(c.Body(), req.Endpoint)
	}, s.CreateNotificationEndpoint, http.StatusCreated))
	api.Get("/parks/:park/notification-endpoints", handle(func(c *fiber.Ctx) (*pb.ListNotificationEndpointsRequest, error) {
		return &pb.ListNotificationEndpointsRequest{ParkId: c.Params("park")}, nil
	}, s.ListNotificationEndpoints, http.StatusOK))
	api.Delete("/parks/:park/notification-endpoints/:id", handle(func(c *fiber.Ctx) (*pb.DeleteNotificationEndpointRequest, error) {
		return &pb.DeleteNotificationEndpointRequest{ParkId: c.Params("park"), EndpointId: c.Params("id")}, nil
	}, s.DeleteNotificationEndpoint, http.StatusNoContent))
	api.Get("/parks/:park/deliveries", handle(func(c *fiber.Ctx) (*pb.ListDeliveriesRequest, error) {
		limit, err := queryInt("limit", c.Query("limit"))
		return &pb.ListDeliveriesRequest{ParkId: c.Params("park"), AlertId: c.Query("alert_id"), Limit: limit}, err
	}, s.ListDeliveries, http.StatusOK))
}

// sseStream adapts the WatchAlerts server stream to Server-Sent Events: the gRPC method runs
// unchanged and its messages go to the HTTP response.
type sseStream struct {
	grpc.ServerStream
	ctx    context.Context
	events chan *pb.AlertEvent
}

func (s *sseStream) Context() context.Context { return s.ctx }

func (s *sseStream) Send(e *pb.AlertEvent) error {
	select {
	case s.events <- e:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// sseHeartbeat keeps proxies from closing an idle stream and notices a client that left.
const sseHeartbeat = 15 * time.Second

// watchAlerts serves GET /parks/{park}/alerts/stream. An error before the first event (no
// token, no access, no park) is a problem+json response like any other.
func watchAlerts(s pb.AlertingServiceServer) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithCancel(context.WithoutCancel(c.UserContext()))
		st := &sseStream{ctx: ctx, events: make(chan *pb.AlertEvent, 64)}
		done := make(chan error, 1)
		go func() {
			err := s.WatchAlerts(&pb.WatchAlertsRequest{ParkId: c.Params("park")}, st)
			close(st.events)
			done <- err
		}()
		var first *pb.AlertEvent
		select {
		case err := <-done:
			cancel()
			if err == nil {
				err = errors.New("alert feed ended before it began")
			}
			return err
		case first = <-st.events:
		}
		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set("X-Accel-Buffering", "no")
		conn := c.Context().Conn()
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			defer cancel()
			tick := time.NewTicker(sseHeartbeat)
			defer tick.Stop()
			for e := first; ; {
				if e != nil {
					b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(e)
					if err != nil {
						return
					}
					_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.GetKind(), b)
				} else {
					_, _ = w.WriteString(": keep-alive\n\n")
				}
				// The server's write timeout bounds each write of the stream, not the stream.
				if err := conn.SetWriteDeadline(time.Now().Add(2 * sseHeartbeat)); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return // the client left
				}
				select {
				case ev, ok := <-st.events:
					if !ok {
						return
					}
					e = ev
				case <-tick.C:
					e = nil
				}
			}
		})
		return nil
	}
}
