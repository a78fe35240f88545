package rest

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// registerAccounting serves factor sets, accounting inputs, indicators and series. A
// value-added import is a POST of text/csv to the park's value-added collection.
func registerAccounting(api fiber.Router, s pb.AccountingServiceServer) {
	api.Get("/factor-sets", handle(func(*fiber.Ctx) (*pb.ListFactorSetsRequest, error) {
		return &pb.ListFactorSetsRequest{}, nil
	}, s.ListFactorSets, http.StatusOK))
	api.Get("/factor-sets/:id", handle(func(c *fiber.Ctx) (*pb.GetFactorSetRequest, error) {
		v, err := queryInt("version", c.Query("version"))
		return &pb.GetFactorSetRequest{Id: c.Params("id"), Version: v}, err
	}, s.GetFactorSet, http.StatusOK))
	api.Post("/factor-sets", handle(func(c *fiber.Ctx) (*pb.PublishFactorSetRequest, error) {
		req := &pb.PublishFactorSetRequest{FactorSet: &pb.FactorSet{}}
		return req, decodeBody(c.Body(), req.FactorSet)
	}, s.PublishFactorSet, http.StatusCreated))

	api.Put("/parks/:park/enterprises/:id/value-added/:month", handle(func(c *fiber.Ctx) (*pb.PutValueAddedRequest, error) {
		req := &pb.PutValueAddedRequest{ParkId: c.Params("park"), EnterpriseId: c.Params("id"), Month: c.Params("month"), ValueAdded: &pb.ValueAdded{}}
		return req, decodeBody(c.Body(), req.ValueAdded)
	}, s.PutValueAdded, http.StatusOK))
	api.Get("/parks/:park/enterprises/:id/value-added", handle(func(c *fiber.Ctx) (*pb.ListValueAddedRequest, error) {
		return &pb.ListValueAddedRequest{ParkId: c.Params("park"), EnterpriseId: c.Params("id"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.ListValueAdded, http.StatusOK))
	api.Get("/parks/:park/value-added", handle(func(c *fiber.Ctx) (*pb.ListValueAddedRequest, error) {
		return &pb.ListValueAddedRequest{ParkId: c.Params("park"), EnterpriseId: c.Query("enterprise_id"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.ListValueAdded, http.StatusOK))
	api.Post("/parks/:park/value-added", handle(func(c *fiber.Ctx) (*pb.ImportValueAddedRequest, error) {
		if ct := string(c.Request().Header.ContentType()); !hasMediaType(ct, "text/csv") {
			return nil, &registry.FieldError{Field: "body", Reason: "a value-added import is text/csv, not " + ct}
		}
		return &pb.ImportValueAddedRequest{ParkId: c.Params("park"), Csv: append([]byte(nil), c.Body()...)}, nil
	}, s.ImportValueAdded, http.StatusOK))

	api.Put("/parks/:park/enterprises/:id/process-output/:month", handle(func(c *fiber.Ctx) (*pb.PutProcessOutputRequest, error) {
		req := &pb.PutProcessOutputRequest{ParkId: c.Params("park"), EnterpriseId: c.Params("id"), Month: c.Params("month"), ProcessOutput: &pb.ProcessOutput{}}
		return req, decodeBody(c.Body(), req.ProcessOutput)
	}, s.PutProcessOutput, http.StatusOK))
	api.Get("/parks/:park/process-output", handle(func(c *fiber.Ctx) (*pb.ListProcessOutputsRequest, error) {
		return &pb.ListProcessOutputsRequest{ParkId: c.Params("park"), EnterpriseId: c.Query("enterprise_id"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.ListProcessOutputs, http.StatusOK))

	api.Post("/parks/:park/green-instruments", handle(func(c *fiber.Ctx) (*pb.CreateGreenInstrumentRequest, error) {
		req := &pb.CreateGreenInstrumentRequest{ParkId: c.Params("park"), Instrument: &pb.GreenInstrument{}}
		return req, decodeBody(c.Body(), req.Instrument)
	}, s.CreateGreenInstrument, http.StatusCreated))
	api.Get("/parks/:park/green-instruments", handle(func(c *fiber.Ctx) (*pb.ListGreenInstrumentsRequest, error) {
		return &pb.ListGreenInstrumentsRequest{ParkId: c.Params("park"), From: c.Query("from"), To: c.Query("to")}, nil
	}, s.ListGreenInstruments, http.StatusOK))

	api.Post("/parks/:park/meters/:id/replacements", handle(func(c *fiber.Ctx) (*pb.CreateReplacementRequest, error) {
		req := &pb.CreateReplacementRequest{ParkId: c.Params("park"), MeterId: c.Params("id"), Replacement: &pb.Replacement{}}
		return req, decodeBody(c.Body(), req.Replacement)
	}, s.CreateReplacement, http.StatusCreated))
	api.Get("/parks/:park/meters/:id/replacements", handle(func(c *fiber.Ctx) (*pb.ListReplacementsRequest, error) {
		return &pb.ListReplacementsRequest{ParkId: c.Params("park"), MeterId: c.Params("id")}, nil
	}, s.ListReplacements, http.StatusOK))

	api.Get("/parks/:park/indicators", handle(func(c *fiber.Ctx) (*pb.GetIndicatorsRequest, error) {
		return &pb.GetIndicatorsRequest{ParkId: c.Params("park"), From: c.Query("from"), To: c.Query("to"),
			Rule: c.Query("rule"), EnterpriseId: c.Query("enterprise")}, nil
	}, s.GetIndicators, http.StatusOK))
	api.Get("/parks/:park/series", handle(func(c *fiber.Ctx) (*pb.GetSeriesRequest, error) {
		return &pb.GetSeriesRequest{ParkId: c.Params("park"), Metric: c.Query("metric"), From: c.Query("from"), To: c.Query("to"),
			Step: c.Query("step"), EnterpriseId: c.Query("enterprise")}, nil
	}, s.GetSeries, http.StatusOK))
}
