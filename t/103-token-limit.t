#!/usr/bin/perl
# starling_token_limit: a token bucket per key in a shared zone (both
# workers charge it), prompt + completion tokens; over budget: 429 with
# Retry-After and RateLimit-* before any work; a stream that spends the
# budget mid-way finishes and leaves a debt that the next request waits
# out. rate=1/m: the bucket refills by one token a minute, so what the
# test does in a few seconds leaves the figures exact (no clock in the
# assertions beyond "less than a minute passed").

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(workers => 2, listen => 'reuseport',
                          http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    starling_token_limit_zone $http_x_api_key zone=tokens:1m;
EOF2
        starling_token_limit zone=tokens rate=1/m burst=40;
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

sub metric {
    my ($name) = @_;
    my $r = $t->request('GET', '/metrics');
    my ($v) = $r->{body} =~ /^\Q$name\E (\S+)$/m;
    return $v;
}

my $req = { prompt => 'Once upon a time', max_tokens => 10, temperature => 0,
            ignore_eos => JSON::PP::true };

# key a: a fresh bucket is full
my $r = $t->request('POST', '/v1/completions', $req, 'X-Api-Key' => 'a');
is($r->{status}, 200, 'first request admitted');
is($r->{headers}{'ratelimit-limit'}, 40, 'RateLimit-Limit is the burst');
is($r->{headers}{'ratelimit-remaining'}, 40, 'RateLimit-Remaining: full');
is($r->{headers}{'ratelimit-reset'}, 0, 'RateLimit-Reset: nothing to refill');
my $p = $r->{json}{usage}{prompt_tokens};
is($r->{json}{usage}{completion_tokens}, 10, 'ten tokens');

# charged prompt + completion, whichever worker answers
for my $i (1 .. 4) {
    my $b = { %$req, max_tokens => 1 };
    $r = $t->request('POST', '/v1/completions', $b, 'X-Api-Key' => 'a');
    is($r->{headers}{'ratelimit-remaining'}, 40 - ($p + 10) - ($i - 1) * ($p + 1),
       "request $i after: remaining = 40 - what earlier requests used");
}

# key b: a stream asks for more than the whole budget; it is not cut
my ($status, $headers, $ev) = $t->stream('/execute',
    { job_id => 'big', prompt => 'Once upon a time', max_tokens => 60,
      temperature => 0, ignore_eos => JSON::PP::true },
    'X-Api-Key' => 'b');
is($status, 200, 'stream admitted');
my ($end) = grep { $_->{event} eq 'end' } @$ev;
is($end->{json}{tokens_out}, 60, 'the stream finished all 60 tokens past the budget');
is($end->{json}{stop_reason}, 'MAX_TOKENS', '... normally');

my $prompt_before = metric('starling_prompt_tokens_total');
my $budget_before = metric('starling_rejections_total{reason="token_budget"}');

# the debt: 40 - p - 60 tokens; one token is back after (1 - that) minutes
$r = $t->request('POST', '/v1/completions', $req, 'X-Api-Key' => 'b');
is($r->{status}, 429, 'over budget: 429');
is($r->{json}{error}{code}, 'token_budget_exceeded', 'OpenAI error code');
is($r->{json}{error}{type}, 'rate_limit_error', 'OpenAI error type');
is($r->{headers}{'ratelimit-remaining'}, 0, 'RateLimit-Remaining 0');
my $need_s = (1 - (40 - $p - 60)) * 60;
my $ra = $r->{headers}{'retry-after'};
ok($ra > $need_s - 60 && $ra <= $need_s,
   "Retry-After $ra s: the debt's refill time ($need_s s, less what passed)");
my $reset = $r->{headers}{'ratelimit-reset'};
ok($reset > (40 - (40 - $p - 60)) * 60 - 60 && $reset <= (40 - (40 - $p - 60)) * 60,
   "RateLimit-Reset $reset s: until the bucket is full");

# refused before any work: nothing reached the engine
is(metric('starling_prompt_tokens_total'), $prompt_before,
   'the refused request was not tokenized into the engine');
is(metric('starling_rejections_total{reason="token_budget"}'), $budget_before + 1,
   'counted as a token_budget rejection');

# the worker API is limited too, on either worker
for (1 .. 4) {
    $r = $t->request('POST', '/execute', { job_id => "x$_", prompt => 'x' },
                     'X-Api-Key' => 'b');
    is($r->{status}, 429, "worker API over budget: 429 (try $_)");
}

# other keys are not affected; no key is not limited
$r = $t->request('POST', '/v1/completions', $req, 'X-Api-Key' => 'c');
is($r->{status}, 200, 'another key has its own budget');
$r = $t->request('POST', '/v1/completions', $req);
is($r->{status}, 200, 'an empty key is not limited');
ok(!exists $r->{headers}{'ratelimit-limit'}, '... and gets no RateLimit headers');

$t->stop;
$t->check_error_log;

# configuration errors
my @bad = (
    [ "starling_token_limit zone=nope rate=10/m;", qr/unknown starling_token_limit zone "nope"/ ],
    [ "starling_token_limit_zone \$remote_addr zone=t:1m;\n    starling_token_limit zone=t rate=10/s;",
      qr/invalid starling_token_limit parameter "rate=10\/s"/ ],
    [ "starling_token_limit_zone \$remote_addr zone=t:1m;\n    starling_token_limit zone=t;",
      qr/needs zone=NAME and rate=N\/m/ ],
    [ "starling_token_limit_zone \$remote_addr zone=t:1m;\n    starling_token_limit zone=t rate=10/m burst=0;",
      qr/invalid starling_token_limit parameter "burst=0"/ ],
    [ "starling_token_limit_zone \$remote_addr zone=t;", qr/invalid zone size/ ],
);
for my $case (@bad) {
    my $b = StarlingTest->new(http => "    starling_model tiny path={{MODEL260K}};\n    $case->[0]\n");
    my ($ok, $out) = $b->test_conf;
    ok(!$ok, "rejected: $case->[0]");
    like($out, $case->[1], '... with a clear message') or diag($out);
    like($out, qr/nginx\.conf:\d+/, '... and file:line');
}

done_testing();
