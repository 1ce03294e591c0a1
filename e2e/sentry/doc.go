// Package sentry holds the end-to-end test of the sentry topology
// (sentrylink and `signerd sentry`): real CometBFT nodes in network
// namespaces, configured by `signerd sentry apply`, firewalled by
// `signerd sentry firewall` and checked by `signerd sentry verify`.
//
// The tests need root, iproute2, nftables and the CometBFT v0.38.26 binary
// ($SIGNERD_COMETBFT); without them they skip locally and fail under
// CI=true. Every namespace and link they create carries a per-run prefix and
// is removed when the test ends; nothing is added to the root namespace.
package sentry
