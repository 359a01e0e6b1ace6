# syntax=docker/dockerfile:1
# Build: docker build -t regiondns .
# Run:   docker run -v $PWD/zone.yml:/etc/regiondns/zone.yml:ro -p 53:5353/udp -p 53:5353/tcp -p 9253:9253 regiondns

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# A static binary: no libc in the final image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/regiondns ./cmd/regiondns \
    && /out/regiondns version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/regiondns /usr/local/bin/regiondns
# Non-root cannot bind port 53: the container listens on 5353 and the
# runtime maps 53 to it (see deploy/kubernetes/service.yaml).
ENV REGIONDNS_CONFIG=/etc/regiondns/zone.yml \
    REGIONDNS_DNS_ADDR=:5353 \
    REGIONDNS_HTTP_ADDR=:9253 \
    REGIONDNS_LOG_FORMAT=json
EXPOSE 5353/udp 5353/tcp 9253/tcp
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/regiondns"]
CMD ["serve"]
