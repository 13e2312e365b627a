#!/usr/bin/perl
# The queue timeout ends when the engine admits the request: a
# non-streaming request whose generation lasts well past
# `starling_queue ... timeout=` is answered 200 with every token, not
# 503 queue_timeout (the reply's header only leaves at the end). From
# admission on, only starling_request_timeout limits it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use StarlingTest;

StarlingTest::require_nginx();
plan skip_all => 'needs ../shared/models/synthetic/synth-llama-F32.gguf'
    unless StarlingTest::synth_f32();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model synth path={{SYNTHF32}};
EOF2
        location /rt/v1/ { starling openai; starling_queue 32 timeout=1s;
                           starling_request_timeout 1200ms; }
        location /v1/ { starling openai; starling_queue 32 timeout=1s; }
        location / { starling worker; starling_queue 32 timeout=1s; }
EOF3

# how long one token takes here, to size a generation of several seconds
my $t0 = time;
my $r = $t->request('POST', '/v1/completions',
    { prompt => 'Once upon a time', max_tokens => 8, temperature => 0,
      ignore_eos => JSON::PP::true });
is($r->{status}, 200, 'short request: 200');
my $per_token = (time - $t0) / 8;
my $n = int(4 / ($per_token || 0.001));    # ~4 s of generation
$n = 24 if $n < 24;
$n = 400 if $n > 400;
my $ctx = $t->request('GET', '/health')->{json}{context_length} // 0;
$n = int(($ctx - 32) / 2) if $n > ($ctx - 32) / 2;
diag(sprintf '%.1f ms per token: max_tokens %d', $per_token * 1000, $n);

$t0 = time;
$r = $t->request('POST', '/v1/completions',
    { prompt => 'Once upon a time', max_tokens => $n, temperature => 0,
      ignore_eos => JSON::PP::true });
my $took = time - $t0;
diag(sprintf 'non-streaming %d tokens took %.2f s (queue timeout 1 s)', $n, $took);
is($r->{status}, 200, 'non-streaming generation past the queue timeout: 200')
    or diag($r->{body});
is($r->{json}{usage}{completion_tokens}, $n, '... with every token');
is($r->{json}{choices}[0]{finish_reason}, 'length', '... finish_reason length');

$r = $t->request('POST', '/v1/chat/completions',
    { messages => [ { role => 'user', content => 'Tell me a story' } ],
      max_tokens => $n, temperature => 0, ignore_eos => JSON::PP::true });
is($r->{status}, 200, 'non-streaming chat past the queue timeout: 200')
    or diag($r->{body});
is($r->{json}{usage}{completion_tokens}, $n, '... with every token');

# after admission the request timeout still applies (and ends it as
# "length" with fewer tokens, not as a 503)
$r = $t->request('POST', '/rt/v1/completions',
    { prompt => 'Once upon a time', max_tokens => 2 * $n, temperature => 0,
      ignore_eos => JSON::PP::true });
is($r->{status}, 200, 'request timeout after admission: 200') or diag($r->{body});
is($r->{json}{choices}[0]{finish_reason}, 'length', '... finish_reason length');
# (that the limit cuts a generation short is t/045's check; asserting it
# here would depend on how fast this machine generates)

$r = $t->request('GET', '/metrics');
like($r->{body}, qr/^starling_requests_total\{outcome="rejected"\} 0$/m,
     'nothing counted as rejected');
like($r->{body}, qr/^starling_active_requests 0$/m, 'active 0');

$t->stop;
$t->check_error_log;

done_testing();
