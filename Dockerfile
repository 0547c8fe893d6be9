# tokengate container image: a static binary on distroless, as a non-root user.
#
#   docker build -t tokengate:dev .
#   docker run --rm -p 8080:8080 -p 9090:9090 -v $PWD/deploy:/etc/tokengate:ro \
#     tokengate:dev serve --config /etc/tokengate/tokengate.yaml
#
# Not built in CI (the CI machine has no container engine); the Helm chart in
# charts/tokengate runs this image.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/tokengate ./cmd/tokengate

# static: no libc, no shell; nonroot: uid/gid 65532, as the chart's securityContext expects.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokengate /usr/local/bin/tokengate
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/tokengate"]
CMD ["serve", "--config", "/etc/tokengate/config/tokengate.yaml"]
