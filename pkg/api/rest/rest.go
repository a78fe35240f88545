// Package rest is the Fiber REST facade under /api/v1. Handlers only build the proto request
// from the path, query and body, call the gRPC service implementation in-process, and write
// protojson; errors become application/problem+json with the status matching the gRPC code.
package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 1 << 20

// Options wires the facade to the service implementations.
type Options struct {
	Registry  pb.RegistryServiceServer
	Auth      pb.AuthServiceServer
	Telemetry pb.TelemetryServiceServer
	// Accounting is optional: without it the accounting routes are not served.
	Accounting pb.AccountingServiceServer
	// Alerting is optional too.
	Alerting pb.AlertingServiceServer
	Authn    *auth.Authenticator
	Logger   *slog.Logger
}

// New returns the Fiber app serving /api/v1. The caller may add routes (health, metrics,
// dashboard) before listening.
func New(opts Options) *fiber.App {
	app := fiber.New(fiber.Config{
		BodyLimit:             MaxBodyBytes,
		ErrorHandler:          problemHandler(opts.Logger),
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		AppName:               "parkcarbon",
		// Values from the context (path parameters, headers, body) stay valid after the
		// handler returns: the live feed keeps its park id for as long as it streams, and
		// Fiber otherwise reuses their memory for the next request.
		Immutable: true,
	})
	api := app.Group("/api/v1", logRequests(opts.Logger), authenticate(opts.Authn))
	registerRegistry(api, opts.Registry)
	registerTelemetry(api, opts.Telemetry)
	if opts.Accounting != nil {
		registerAccounting(api, opts.Accounting)
	}
	if opts.Alerting != nil {
		registerAlerting(api, opts.Alerting)
	}
	api.Post("/tokens", handle(func(c *fiber.Ctx) (*pb.CreateTokenRequest, error) {
		req := &pb.CreateTokenRequest{}
		return req, decodeBody(c.Body(), req)
	}, opts.Auth.CreateToken, http.StatusCreated))
	api.Use(func(c *fiber.Ctx) error {
		return fiber.NewError(http.StatusNotFound, "no such resource: "+c.Method()+" "+c.Path())
	})
	return app
}

func registerRegistry(api fiber.Router, s pb.RegistryServiceServer) {
	api.Post("/parks", handle(func(c *fiber.Ctx) (*pb.CreateParkRequest, error) {
		req := &pb.CreateParkRequest{Park: &pb.Park{}}
		return req, decodeBody(c.Body(), req.Park)
	}, s.CreatePark, http.StatusCreated))
	api.Get("/parks", handle(func(c *fiber.Ctx) (*pb.ListParksRequest, error) {
		size, err := queryInt("page_size", c.Query("page_size"))
		return &pb.ListParksRequest{PageSize: size, PageToken: c.Query("page_token")}, err
	}, s.ListParks, http.StatusOK))
	api.Get("/parks/:park", handle(func(c *fiber.Ctx) (*pb.GetParkRequest, error) {
		return &pb.GetParkRequest{ParkId: c.Params("park")}, nil
	}, s.GetPark, http.StatusOK))
	api.Patch("/parks/:park", handle(func(c *fiber.Ctx) (*pb.UpdateParkRequest, error) {
		req := &pb.UpdateParkRequest{Park: &pb.Park{}}
		mask, err := decodePatch(c.Body(), req.Park)
		req.UpdateMask = mask
		return req, pathID(&req.Park.Id, c.Params("park"), "id", err)
	}, s.UpdatePark, http.StatusOK))
	api.Delete("/parks/:park", handle(func(c *fiber.Ctx) (*pb.DeleteParkRequest, error) {
		cascade, err := queryBool("cascade", c.Query("cascade"))
		return &pb.DeleteParkRequest{ParkId: c.Params("park"), Cascade: cascade}, err
	}, s.DeletePark, http.StatusNoContent))

	api.Post("/parks/:park/enterprises", handle(func(c *fiber.Ctx) (*pb.CreateEnterpriseRequest, error) {
		req := &pb.CreateEnterpriseRequest{ParkId: c.Params("park"), Enterprise: &pb.Enterprise{}}
		return req, decodeBody(c.Body(), req.Enterprise)
	}, s.CreateEnterprise, http.StatusCreated))
	api.Get("/parks/:park/enterprises", handle(func(c *fiber.Ctx) (*pb.ListEnterprisesRequest, error) {
		size, err := queryInt("page_size", c.Query("page_size"))
		return &pb.ListEnterprisesRequest{ParkId: c.Params("park"), PageSize: size, PageToken: c.Query("page_token")}, err
	}, s.ListEnterprises, http.StatusOK))
	api.Get("/parks/:park/enterprises/:id", handle(func(c *fiber.Ctx) (*pb.GetEnterpriseRequest, error) {
		return &pb.GetEnterpriseRequest{ParkId: c.Params("park"), EnterpriseId: c.Params("id")}, nil
	}, s.GetEnterprise, http.StatusOK))
	api.Patch("/parks/:park/enterprises/:id", handle(func(c *fiber.Ctx) (*pb.UpdateEnterpriseRequest, error) {
		req := &pb.UpdateEnterpriseRequest{ParkId: c.Params("park"), Enterprise: &pb.Enterprise{}}
		mask, err := decodePatch(c.Body(), req.Enterprise)
		req.UpdateMask = mask
		return req, pathID(&req.Enterprise.Id, c.Params("id"), "id", err)
	}, s.UpdateEnterprise, http.StatusOK))

	api.Post("/parks/:park/meters", handle(func(c *fiber.Ctx) (*pb.CreateMeterRequest, error) {
		req := &pb.CreateMeterRequest{ParkId: c.Params("park"), Meter: &pb.Meter{}}
		return req, decodeBody(c.Body(), req.Meter)
	}, s.CreateMeter, http.StatusCreated))
	api.Get("/parks/:park/meters", handle(func(c *fiber.Ctx) (*pb.ListMetersRequest, error) {
		size, err := queryInt("page_size", c.Query("page_size"))
		return &pb.ListMetersRequest{
			ParkId: c.Params("park"), EnterpriseId: c.Query("enterprise_id"), GatewayId: c.Query("gateway_id"),
			PageSize: size, PageToken: c.Query("page_token"),
		}, err
	}, s.ListMeters, http.StatusOK))
	api.Get("/parks/:park/meters/:id", handle(func(c *fiber.Ctx) (*pb.GetMeterRequest, error) {
		return &pb.GetMeterRequest{ParkId: c.Params("park"), MeterId: c.Params("id")}, nil
	}, s.GetMeter, http.StatusOK))
	api.Patch("/parks/:park/meters/:id", handle(func(c *fiber.Ctx) (*pb.UpdateMeterRequest, error) {
		req := &pb.UpdateMeterRequest{ParkId: c.Params("park"), Meter: &pb.Meter{}}
		mask, err := decodePatch(c.Body(), req.Meter)
		req.UpdateMask = mask
		return req, pathID(&req.Meter.Id, c.Params("id"), "id", err)
	}, s.UpdateMeter, http.StatusOK))

	api.Post("/parks/:park/gateways", handle(func(c *fiber.Ctx) (*pb.CreateGatewayRequest, error) {
		req := &pb.CreateGatewayRequest{ParkId: c.Params("park"), Gateway: &pb.Gateway{}}
		return req, decodeBody(c.Body(), req.Gateway)
	}, s.CreateGateway, http.StatusCreated))
	api.Get("/parks/:park/gateways", handle(func(c *fiber.Ctx) (*pb.ListGatewaysRequest, error) {
		size, err := queryInt("page_size", c.Query("page_size"))
		return &pb.ListGatewaysRequest{ParkId: c.Params("park"), PageSize: size, PageToken: c.Query("page_token")}, err
	}, s.ListGateways, http.StatusOK))
}

// pathID sets a resource id from the path unless decoding already failed; a body naming a
// different id is refused by the service ("cannot be changed").
func pathID(id *string, fromPath, field string, decodeErr error) error {
	if decodeErr != nil {
		return decodeErr
	}
	if *id == "" {
		*id = fromPath
	}
	if *id != fromPath {
		return &registry.FieldError{Field: field, Reason: "body names " + *id + " but the path names " + fromPath}
	}
	return nil
}

// handle builds the request, calls the service method, and writes the response as protojson.
func handle[Req any, Resp proto.Message](build func(*fiber.Ctx) (Req, error), call func(context.Context, Req) (Resp, error), okStatus int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req, err := build(c)
		if err != nil {
			return err
		}
		resp, err := call(c.UserContext(), req)
		if err != nil {
			return err
		}
		if okStatus == http.StatusNoContent {
			return c.SendStatus(okStatus)
		}
		b, err := marshalOpts.Marshal(resp)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Status(okStatus).Send(b)
	}
}

// authenticate resolves the bearer token with the same Authenticator the gRPC server uses.
func authenticate(a *auth.Authenticator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := a.Authenticate(c.UserContext(), c.Get(fiber.HeaderAuthorization))
		if err != nil {
			return err
		}
		c.SetUserContext(auth.WithPrincipal(c.UserContext(), p))
		return c.Next()
	}
}

// logRequests logs each API request with its outcome.
func logRequests(logger *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		apierr.LogCall(c.UserContext(), logger, "rest", c.Method()+" "+c.Route().Path, err, time.Since(start))
		return err
	}
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type          string                  `json:"type"`
	Title         string                  `json:"title"`
	Status        int                     `json:"status"`
	Detail        string                  `json:"detail,omitempty"`
	Code          string                  `json:"code"`
	InvalidParams []apierr.FieldViolation `json:"invalid_params,omitempty"`
}

// problemHandler writes every error as application/problem+json.
func problemHandler(logger *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var p problem
		var fe *fiber.Error
		if errors.As(err, &fe) {
			p = problem{Status: fe.Code, Detail: fe.Message, Code: strings.ToLower(strings.ReplaceAll(http.StatusText(fe.Code), " ", "_"))}
			if fe.Code == http.StatusRequestEntityTooLarge {
				p.Detail = "request body is larger than 1 MiB"
			}
		} else {
			st := status.Convert(apierr.Status(err))
			if st.Code() == codes.Internal || st.Code() == codes.Unknown {
				logger.ErrorContext(c.UserContext(), "internal error", "method", c.Method(), "path", c.Path(), "err", err)
			}
			p = problem{
				Status: apierr.HTTPStatus(st.Code()), Detail: st.Message(),
				Code: codeName(st.Code()), InvalidParams: apierr.Violations(st),
			}
		}
		p.Type = "about:blank"
		p.Title = http.StatusText(p.Status)
		if p.Title == "" {
			p.Title = p.Code
		}
		if p.Status == http.StatusUnauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="parkcarbon"`)
		}
		c.Set(fiber.HeaderContentType, "application/problem+json")
		return c.Status(p.Status).JSON(p, "application/problem+json")
	}
}

// codeName renders a gRPC code in snake_case ("invalid_argument").
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func registerTelemetry(api fiber.Router, s pb.TelemetryServiceServer) {
	api.Get("/parks/:park/meters/:id/readings", handle(func(c *fiber.Ctx) (*pb.ListReadingsRequest, error) {
		return &pb.ListReadingsRequest{ParkId: c.Params("park"), MeterId: c.Params("id"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.ListReadings, http.StatusOK))
	api.Get("/parks/:park/dead-letters", handle(func(c *fiber.Ctx) (*pb.ListDeadLettersRequest, error) {
		size, err := queryInt("page_size", c.Query("page_size"))
		return &pb.ListDeadLettersRequest{ParkId: c.Params("park"), PageSize: size, PageToken: c.Query("page_token")}, err
	}, s.ListDeadLetters, http.StatusOK))
	api.Get("/parks/:park/completeness", handle(func(c *fiber.Ctx) (*pb.GetCompletenessRequest, error) {
		return &pb.GetCompletenessRequest{ParkId: c.Params("park"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.GetCompleteness, http.StatusOK))
	api.Get("/parks/:park/gateway-status", handle(func(c *fiber.Ctx) (*pb.ListGatewayStatusRequest, error) {
		return &pb.ListGatewayStatusRequest{ParkId: c.Params("park")}, nil
	}, s.ListGatewayStatus, http.StatusOK))
}
