// Command ec2sec-forwarder is the central forwarder of ec2sec's central mode, built as the
// Lambda custom runtime's "bootstrap" (provided.al2023): it reads invocations from the
// Lambda Runtime API (AWS_LAMBDA_RUNTIME_API) and hands them to package forwarder. It takes
// no flags; its settings are environment variables (docs/forwarder.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ec2sec/ec2sec/forwarder"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		fmt.Fprintln(os.Stderr, "ec2sec-forwarder: AWS_LAMBDA_RUNTIME_API is not set: this is a Lambda bootstrap (docs/forwarder.md)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fw, err := forwarder.FromEnv(ctx, os.Getenv, os.Stdout, log)
	if err != nil {
		log.Error("forwarder setup failed", "err", err)
		forwarder.InitError(api, err)
		os.Exit(1)
	}
	err = forwarder.RunLambda(ctx, api, func(ctx context.Context, ev []byte) ([]byte, error) {
		res, err := fw.Handle(ctx, ev)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	}, log)
	if err != nil {
		log.Error("runtime loop ended", "err", err)
		os.Exit(1)
	}
}
