# autarky-agent as a container image: nothing but the static agent and the
# CA certificates it checks the clouds' HTTPS endpoints with.
#
#   make build                              # bin/autarky-agent (CGO_ENABLED=0) and bin/ca-certificates.crt
#   docker build -t autarky/agent:dev .
#
# No build stage: the binary is built by `make build` on the machine, so
# the image builds offline from nothing (FROM scratch needs no pull). The
# CA certificates are the build machine's (Debian's ca-certificates,
# /etc/ssl/certs/ca-certificates.crt, copied by `make build`), where Go
# looks for them on Linux. The local platform needs none.
#
# The agent runs as root in the container: its work is the Docker socket,
# which is root's on the node (and root's in all but name: whoever has it
# can start a privileged container). The stack file drops every
# capability and makes the root file system read-only.
FROM scratch
COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin/autarky-agent /autarky-agent
ENTRYPOINT ["/autarky-agent"]
CMD ["help"]
# The agent checks itself (there is no shell or curl here): 200 from its
# /healthz on 127.0.0.1:9910, where the stack file makes it listen.
HEALTHCHECK --interval=15s --timeout=5s --start-period=1m --retries=3 CMD ["/autarky-agent", "health"]
