#!/usr/bin/perl
# Sessions: a two-turn chat whose second turn prefills only its new tokens
# (usage.cached_tokens), X-Session-ID, POST /v1/session/close (the blocks
# come back, seen in /health; idempotent), GET /v1/sessions, a forced
# spill under a small kv= whose restore gives exactly the tokens and
# logprobs of a session that never left memory, the variables in the
# access log, the metrics, and bad input.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

# stories260K: 16 blocks of 16 positions with kv=160k
my $http = <<'EOF2';
    starling_model tiny path={{MODEL260K}} threads=1 max_seqs=2 kv=160k;
    starling_session_store {{PREFIX}}/sessions size=1m max_idle=1h;
    log_format sess '$starling_session_id $starling_session $starling_cached_tokens';
EOF2
my $server = <<'EOF2';
        location /v1/ { starling openai; access_log {{PREFIX}}/logs/sess.log sess; }
        location / { starling worker; access_log {{PREFIX}}/logs/sess.log sess; }
EOF2

sub server {
    my $t = StarlingTest->new(http => $http, server => $server);
    mkdir "$t->{prefix}/sessions";
    chmod 0777, "$t->{prefix}/sessions";
    return $t->start;
}

my $t = server();
my $ref = server();      # no memory pressure: sessions stay resident

sub tokenize {
    my ($t, $text, $special) = @_;
    my $r = $t->request('POST', '/tokenize',
        { content => $text, add_special => $special ? JSON::PP::true : JSON::PP::false });
    return $r->{json}{tokens};
}

# turn 1 on /execute: the generated ids
sub turn1 {
    my ($t, $sid, $prompt, $n) = @_;
    my (undef, undef, $ev) = $t->stream('/execute',
        { job_id => "j-$sid-" . int(rand(1e9)), prompt => $prompt,
          max_tokens => $n, temperature => 0, ignore_eos => JSON::PP::true,
          session_id => $sid });
    my @ids = map { $_->{json}{id} } grep { ($_->{event} // '') eq 'token' } @$ev;
    my ($m) = grep { ($_->{event} // '') eq 'metrics' } @$ev;
    return (\@ids, $m ? $m->{json} : {});
}

# a later turn on /v1/completions with token ids
sub turn {
    my ($t, $sid, $ids, $n, %h) = @_;
    my $body = { prompt => $ids, max_tokens => $n, temperature => 0,
                 logprobs => 1, ignore_eos => JSON::PP::true };
    $body->{session_id} = $sid if defined $sid && !%h;
    return $t->request('POST', '/v1/completions', $body, %h);
}

sub lp { StarlingTest::json_encode($_[0]{json}{choices}[0]{logprobs}{token_logprobs}) }

# --- two turns: the second prefills only its new tokens ---------------------
my $p1 = tokenize($t, 'Once upon a time', 1);
my ($g1, $m1) = turn1($t, 'chat-1', 'Once upon a time', 20);
is(scalar @$g1, 20, 'turn 1: 20 tokens');
is($m1->{cached_tokens}, 0, 'turn 1: nothing cached');
my $h = $t->request('GET', '/health')->{json};
is($h->{kv_blocks_free}, 16 - 2, 'turn 1 pins 24 positions in 2 blocks');

my $extra = tokenize($t, ' Then they went home.', 0);
my @p2 = (@$p1, @$g1, @$extra);
my $r2 = turn($t, 'chat-1', \@p2, 8);
is($r2->{status}, 200, 'turn 2: 200');
is($r2->{json}{usage}{prompt_tokens_details}{cached_tokens}, @$p1 + 20 - 1,
   'turn 2: every token of turn 1 but the last sampled one is cached');
my $fresh = turn($t, undef, \@p2, 8);
is($fresh->{json}{choices}[0]{text}, $r2->{json}{choices}[0]{text},
   'turn 2 text equals a request without session');

# X-Session-ID header, extending turn 2
my @p3 = (@p2, @{tokenize($t, $r2->{json}{choices}[0]{text}, 0)});
my $r3 = turn($t, 'chat-1', \@p3, 4, 'X-Session-ID' => 'chat-1');
ok($r3->{json}{usage}{prompt_tokens_details}{cached_tokens} >= @p2,
   'X-Session-ID: the session is resumed (' .
   $r3->{json}{usage}{prompt_tokens_details}{cached_tokens} . ' cached)');

my $l = $t->request('GET', '/v1/sessions');
is($l->{status}, 200, 'GET /v1/sessions');
my ($s) = grep { $_->{session_id} eq 'chat-1' } @{$l->{json}{data}};
ok($s && $s->{state} eq 'resident' && $s->{tokens} > @p2 && $s->{bytes} > 0,
   'listed resident with its tokens and bytes');
is($t->request('GET', '/sessions')->{status}, 200, 'worker surface lists too');

# --- close --------------------------------------------------------------------
my $c = $t->request('POST', '/v1/session/close', { session_id => 'chat-1' });
is($c->{json}{status}, 'closed', 'close: closed');
$h = $t->request('GET', '/health')->{json};
is($h->{kv_blocks_free}, 16, 'close gives every block back');
$c = $t->request('POST', '/v1/session/close', { session_id => 'chat-1' });
is($c->{json}{status}, 'not_found', 'close again: not_found');
is($t->request('POST', '/v1/session/close', {})->{status}, 400,
   'close without session_id: 400');

# --- forced spill and exact restore ---------------------------------------------
my $prompt = 'One day, a little girl named Lily';
my ($ga) = turn1($t, 's2', $prompt, 40);
my ($gb) = turn1($ref, 's2', $prompt, 40);
is("@$ga", "@$gb", 'turn 1 equal on both servers');
# 14 blocks: more than the 13 free, so s2 (idle) is spilled
my (undef, undef, $ev) = $t->stream('/execute',
    { job_id => 'big', prompt => 'The cat sat on the mat and', max_tokens => 210,
      temperature => 0, ignore_eos => JSON::PP::true });
ok((grep { ($_->{event} // '') eq 'end' } @$ev), 'the big request completes');
($s) = grep { $_->{session_id} eq 's2' } @{$t->request('GET', '/v1/sessions')->{json}{data}};
is($s && $s->{state}, 'spilled', 's2 was spilled');
my @f = glob("$t->{prefix}/sessions/*.kvs");
is(scalar @f, 1, 'one spill file');

my $pa = tokenize($t, $prompt, 1);
my @q = (@$pa, @$ga, @$extra);
my $ra = turn($t, 's2', \@q, 12);
my $rb = turn($ref, 's2', \@q, 12);
is($ra->{json}{usage}{prompt_tokens_details}{cached_tokens}, @$pa + 39,
   'restored: turn 1 cached');
is($rb->{json}{usage}{prompt_tokens_details}{cached_tokens}, @$pa + 39,
   'reference: resident');
is($ra->{json}{choices}[0]{text}, $rb->{json}{choices}[0]{text},
   'restored turn: same text as a session that never left memory');
is(lp($ra), lp($rb), 'restored turn: same logprobs, bit for bit');
@f = glob("$t->{prefix}/sessions/*.kvs");
is(scalar @f, 0, 'the spill file is gone once restored');

my $metrics = $t->request('GET', '/metrics')->{body};
like($metrics, qr/^starling_session_spills_total\{model="tiny"\} 1$/m, 'metrics: 1 spill');
like($metrics, qr/^starling_session_turns_total\{model="tiny",result="restored"\} 1$/m,
     'metrics: 1 restored turn');
like($metrics, qr/^starling_session_restore_bytes_total\{model="tiny"\} [1-9]/m,
     'metrics: restore bytes');

my $log = do { local (@ARGV, $/) = "$t->{prefix}/logs/sess.log"; <> };
like($log, qr/^chat-1 hit \d+$/m, 'access log: $starling_session hit');
like($log, qr/^s2 restored \d+$/m, 'access log: $starling_session restored');
like($log, qr/^s2 miss 0$/m, 'access log: a new session is a miss');

# --- close and list while a stream runs (they wait for the step's end) ------
# The tiny model can finish its 150 tokens before the list request is read
# on a loaded machine, so a turn that ended first is retried (in a fresh
# session) a few times; a server that never lists a running turn as busy
# still fails every attempt.
my ($st, $busy, $sid);
for my $try (1 .. 6) {
    $sid = "busy$try";
    $st = $t->stream_open('/execute',
        { job_id => "long$try", prompt => 'Once upon a time', max_tokens => 150,
          temperature => 0, ignore_eos => JSON::PP::true, session_id => $sid });
    $st->next_event(30);
    my $lb = $t->request('GET', '/v1/sessions');
    ($busy) = grep { $_->{session_id} eq $sid } @{$lb->{json}{data} // []};
    last if $busy && $busy->{busy};
    note("attempt $try: the turn ended before the list was answered");
    1 while $st->next_event(30);
    $st->close;
    $t->request('POST', '/v1/session/close', { session_id => $sid });
}
ok($busy && $busy->{busy}, 'a session with a turn in flight is listed busy');
is($t->request('POST', '/v1/session/close', { session_id => $sid })->{json}{status},
   'closed', 'closing a busy session answers at once');
my @rest;
while (my $e = $st->next_event(30)) { push @rest, $e }
$st->close;
ok((grep { ($_->{event} // '') eq 'end' } @rest), 'its turn still ends normally');
($busy) = grep { $_->{session_id} eq $sid } @{$t->request('GET', '/v1/sessions')->{json}{data}};
ok(!$busy, 'and the session is gone afterwards');

# --- bad input ----------------------------------------------------------------------
my $r = $t->request('POST', '/v1/completions',
    { prompt => 'x', max_tokens => 1, session_id => 'a' x 129 });
is($r->{status}, 400, 'a 129-character session_id: 400');
$r = $t->request('POST', '/v1/completions', { prompt => 'x', max_tokens => 1 },
                 'X-Session-ID' => "a\x01b");
is($r->{status}, 400, 'X-Session-ID with a control character: 400');

my $bad = StarlingTest->new(http => <<'EOF2');
    starling_model tiny path={{MODEL260K}};
    starling_session_store {{PREFIX}}/nowhere;
EOF2
my ($ok, $out) = $bad->test_conf;
ok(!$ok && $out =~ /starling_session_store .* is not a directory/,
   'a missing store directory fails nginx -t');

$t->check_error_log;
$ref->check_error_log;
done_testing();
