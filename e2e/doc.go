// Package e2e is upmedic's end-to-end suite: the real upmedic binary, built
// with the Dockerfile's own flags, between a real nginx (configured with
// testdata/nginx/) and real apps (gunicorn, php-fpm, Node.js), one failure
// scenario each, asserting what the client sees and what nginx logs. It also
// builds the container image's final stage with buildah, runs the binary in
// an empty chroot, checks the systemd unit and the deployment examples, and
// opens the status page in headless Chromium.
//
// The package has no code outside its tests. It needs root (nginx's master
// process, www-data workers, an unprivileged upmedic) and the peers that
// internal/peers lists (nginx, gunicorn, php-fpm, Node.js, buildah,
// systemd-analyze, chromium); a test whose peer is missing skips, saying
// which and how to install it (in CI, with CI=true, it fails instead). The
// README's "Adopt upmedic" section is the operator's guide the suite keeps
// honest.
package e2e
