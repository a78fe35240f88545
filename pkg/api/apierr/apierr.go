// Package apierr is the one table that maps domain errors to gRPC status codes and gRPC codes to
// HTTP statuses, so both transports answer the same failure the same way.
package apierr

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// codeOf lists domain errors and their gRPC codes; the first match wins.
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{auth.ErrUnauthenticated, codes.Unauthenticated},
	{auth.ErrPermissionDenied, codes.PermissionDenied},
	{registry.ErrInvalid, codes.InvalidArgument},
	{registry.ErrNotFound, codes.NotFound},
	{registry.ErrAlreadyExists, codes.AlreadyExists},
	{registry.ErrConflict, codes.FailedPrecondition},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// httpOf maps gRPC codes to HTTP statuses (the mapping of google.rpc.Code, with
// FailedPrecondition and Aborted as 409 Conflict: a park that still has meters).
var httpOf = map[codes.Code]int{
	codes.OK:                 http.StatusOK,
	codes.Canceled:           499,
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.FailedPrecondition: http.StatusConflict,
	codes.Aborted:            http.StatusConflict,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.Unimplemented:      http.StatusNotImplemented,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.Internal:           http.StatusInternalServerError,
	codes.Unknown:            http.StatusInternalServerError,
	codes.DataLoss:           http.StatusInternalServerError,
}

// Code returns the gRPC code of a domain error; Internal when the table has no entry.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	for _, e := range codeOf {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return codes.Internal
}

// HTTPStatus returns the HTTP status for a gRPC code.
func HTTPStatus(c codes.Code) int {
	if s, ok := httpOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Status turns err into a gRPC status error. A registry.FieldError travels as a
// google.rpc.BadRequest field violation, so clients of either transport learn the field.
// Internal errors keep their message out of the response; the caller logs them.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := Code(err)
	msg := err.Error()
	if code == codes.Internal {
		msg = "internal error"
	}
	st := status.New(code, msg)
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.Field, Description: fe.Reason},
		}}
		if withDetails, derr := st.WithDetails(br); derr == nil {
			st = withDetails
		}
	}
	return st.Err()
}

// FieldViolation is one invalid field of a request.
type FieldViolation struct {
	Field  string `json:"name"`
	Reason string `json:"reason"`
}

// Violations returns the field violations a status carries.
func Violations(st *status.Status) []FieldViolation {
	var out []FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, FieldViolation{Field: v.GetField(), Reason: v.GetDescription()})
			}
		}
	}
	return out
}

// LogCall logs one API call of either transport: debug when it succeeded, info for a client
// error, error for a server error.
func LogCall(ctx context.Context, logger *slog.Logger, transport, method string, err error, d time.Duration) {
	code := Code(err)
	level := slog.LevelDebug
	switch {
	case code == codes.OK:
	case HTTPStatus(code) >= 500:
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{
		slog.String("transport", transport), slog.String("method", method),
		slog.String("code", code.String()), slog.Duration("duration", d),
	}
	if p := auth.PrincipalFrom(ctx); p != nil {
		attrs = append(attrs, slog.String("actor", p.Actor()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	logger.LogAttrs(ctx, level, "api call", attrs...)
}
