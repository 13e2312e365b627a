#!/usr/bin/perl
# Soak: SOAK_CLIENTS (default 32) forked clients drive the real module on
# loopback for SOAK_SECONDS (default 60) with a mix of streaming and
# non-streaming OpenAI requests, /execute streams, /cancel of running
# jobs, clients that vanish mid-stream, hostile bodies and two
# `nginx -s reload`s (SIGHUP to the master). Afterwards: every request had
# a well-formed outcome, nothing was a 500, error.log is clean, the engine
# is idle with its KV pool full, starling_active_requests is 0 and the
# workers' RSS grew within a stated bound.
#
#   SOAK_SECONDS=300 SOAK_CLIENTS=32 SOAK_SEED=1 prove -v t/soak/soak.t
#
# Not in t/*.t on purpose: make test-nginx runs those (twice, with ASan);
# mk/soak.mk runs this one (make soak, make test-soak).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(sleep time);
use StarlingTest qw(json_decode json_encode);

StarlingTest::require_nginx();

my $SECONDS = $ENV{SOAK_SECONDS} // 60;
my $CLIENTS = $ENV{SOAK_CLIENTS} // 32;
my $SEED    = $ENV{SOAK_SEED} // 1;
my $QUEUE_TIMEOUT_S = 2;           # starling_queue timeout in the soak
my $BODY_MAX = 64 * 1024;          # client_max_body_size in the soak
# per request: no read waits longer than this for the next bytes
my $IO_TIMEOUT = 30;

# Two workers (the job registry and /cancel cross workers), one compute
# thread each on the 2-core machine; max_seqs=8 so that 32 clients queue,
# and a short queue timeout so that 503s happen. /nsprobe/ has a tiny
# queue timeout for the "503 while generating" probe after the soak.
my $t = StarlingTest->new(workers => 2, http => <<"EOF2", server => <<'EOF3');
    starling_model tiny path={{MODEL260K}} threads=1 max_seqs=8;
    starling_queue 64 timeout=${QUEUE_TIMEOUT_S}s;
    client_max_body_size ${BODY_MAX};
    log_format soak '\$status \$starling_correlation_id \$request_method \$uri '
                    'pid=\$pid t=\$msec '
                    'ct=\$starling_completion_tokens fr=\$starling_finish_reason '
                    'rt=\$request_time';
    access_log {{PREFIX}}/logs/soak.log soak;
EOF2
        location /nsprobe/ { starling openai; starling_queue 64 timeout=100ms; }
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3
$t->start;
my $port = $t->{port};
my $master = $t->pid;
ok($master && kill(0, $master), "nginx master $master runs on 127.0.0.1:$port");

# --- processes ---------------------------------------------------------------

sub proc_cmdline {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/cmdline" or return '';
    local $/;
    my $c = <$fh> // '';
    $c =~ s/\0/ /g;
    return $c;
}

sub proc_ppid {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return -1;
    my $s = <$fh> // '';
    return $s =~ /\)\s+\S+\s+(\d+)/ ? $1 : -1;
}

# the master's children: { pid => cmdline }
sub nginx_children {
    my %c;
    opendir my $d, '/proc' or return \%c;
    for my $p (grep { /^\d+$/ } readdir $d) {
        next unless proc_ppid($p) == $master;
        $c{$p} = proc_cmdline($p);
    }
    return \%c;
}

# serving workers (not "is shutting down"), sorted pids
sub live_workers {
    my $c = nginx_children();
    return [ sort { $a <=> $b }
             grep { $c->{$_} =~ /worker process\s*$/ } keys %$c ];
}

sub vmrss_kb {
    my ($pid, $field) = @_;
    $field //= 'VmRSS';
    open my $fh, '<', "/proc/$pid/status" or return;
    # not $_: callers map over pids with it
    while (my $l = <$fh>) { return $1 if $l =~ /^$field:\s+(\d+) kB/; }
    return;
}

sub rss_of {
    my ($pids) = @_;
    return { map { $_ => vmrss_kb($_) // 0 } @$pids };
}

# --- one HTTP exchange with deadlines ---------------------------------------

sub connect_once {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp', Timeout => 5);
}

sub send_req {
    my ($method, $path, $body, %h) = @_;
    my $s = connect_once() or return;
    my $req = $t->build_request($method, $path, $body, %h);
    local $SIG{PIPE} = 'IGNORE';
    # the server may answer (413) and close before it read all of it
    syswrite($s, $req) // return StarlingTest::Stream->new($s);
    return StarlingTest::Stream->new($s);
}

# reads a non-SSE reply to the end: { status, headers, body, json, complete }
sub read_reply {
    my ($st) = @_;
    my $deadline = time + $IO_TIMEOUT * 4;
    while (!$st->{eof} && !$st->{done} && time < $deadline) {
        last unless $st->fill($IO_TIMEOUT);
    }
    my $r = { status => $st->{status} // 0, headers => $st->{headers} // {},
              body => $st->{buf} };
    my $cl = $r->{headers}{'content-length'};
    $r->{complete} = $st->{chunked} ? $st->{done}
                   : defined $cl ? length($st->{buf}) == $cl : $st->{eof};
    $r->{json} = json_decode($st->{buf});
    $st->close;
    return $r;
}

sub is_error_json {
    my ($j) = @_;
    return 0 unless ref $j eq 'HASH';
    return 1 if ref $j->{error} eq 'HASH' && defined $j->{error}{message};
    return 1 if ref $j->{errors} eq 'ARRAY' && @{$j->{errors}};
    return 0;
}

# outcome of a reply that is not a 200: rejected | client_error | bad_*
sub classify_error_reply {
    my ($r) = @_;
    my $s = $r->{status};
    return ('no_response', 'no status line') unless $s;
    return ('server_500', substr($r->{body}, 0, 200)) if $s >= 500 && $s != 503;
    return ('bad_incomplete', "status $s, body cut") unless $r->{complete};
    return ('bad_error_body', "status $s: " . substr($r->{body}, 0, 200))
        unless is_error_json($r->{json});
    if ($s == 429 || $s == 503) {
        return ('bad_no_retry_after', "status $s")
            unless $r->{headers}{'retry-after'};
        return ('rejected', $r->{json}{error}{code} // '');
    }
    return ('client_error', $s) if $s >= 400 && $s < 500;
    return ('bad_status', $s);
}

# --- the request kinds (run in the clients) ----------------------------------

my @PROMPTS = ('Once upon a time', 'The little dog', 'Lily and Tom went to the park',
               'One day, a big red ball', 'Sam had a toy car. He', 'x');

sub rand_prompt { return $PROMPTS[int rand @PROMPTS]; }

sub sampling {
    my %o = (temperature => (rand() < 0.3 ? 0 : sprintf('%.2f', rand 1.2) + 0),
             seed => int rand 1_000_000);
    $o{ignore_eos} = JSON::PP::true if rand() < 0.5;
    $o{top_k} = 1 + int rand 40 if rand() < 0.2;
    return %o;
}

sub openai_body {
    my ($chat, $stream, $max) = @_;
    my %b = (model => 'tiny', max_tokens => $max, sampling());
    if ($chat) {
        $b{messages} = [ (rand() < 0.3 ? { role => 'system', content => 'Tell stories.' } : ()),
                         { role => 'user', content => rand_prompt() } ];
    } else {
        $b{prompt} = rand_prompt();
    }
    if ($stream) {
        $b{stream} = JSON::PP::true;
        $b{stream_options} = { include_usage => JSON::PP::true } if rand() < 0.3;
    }
    return \%b;
}

sub do_openai_plain {
    my ($id, $chat, $max) = @_;
    my $path = $chat ? '/v1/chat/completions' : '/v1/completions';
    my $st = send_req('POST', $path, openai_body($chat, 0, $max),
                      'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    my $r = read_reply($st);
    return classify_error_reply($r) unless $r->{status} == 200;
    return ('bad_incomplete', 'body cut') unless $r->{complete};
    my $j = $r->{json};
    return ('bad_body', substr($r->{body}, 0, 200))
        unless ref $j eq 'HASH' && ref $j->{choices} eq 'ARRAY' && @{$j->{choices}}
               && $j->{choices}[0]{finish_reason} && ref $j->{usage} eq 'HASH';
    return ('bad_usage', "completion_tokens $j->{usage}{completion_tokens} > $max")
        if $j->{usage}{completion_tokens} > $max;
    return ('json_ok', $j->{choices}[0]{finish_reason});
}

# streams: returns (outcome, detail). $vanish_after: close after that
# many events (a client that goes away).
sub do_openai_stream {
    my ($id, $chat, $max, $vanish_after) = @_;
    my $path = $chat ? '/v1/chat/completions' : '/v1/completions';
    my $st = send_req('POST', $path, openai_body($chat, 1, $max),
                      'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    $st->fill($IO_TIMEOUT) until $st->{head_done} || $st->{eof} || !$st->{sock};
    return ('no_response', 'no header') unless $st->{head_done};
    return classify_error_reply(read_reply($st)) unless $st->{status} == 200;
    my ($n, $finish, $done) = (0, undef, 0);
    while (my $e = $st->next_event($IO_TIMEOUT)) {
        $n++;
        if (($e->{data} // '') eq '[DONE]') { $done = 1; last; }
        my $j = $e->{json};
        unless (ref $j eq 'HASH' && (ref $j->{choices} eq 'ARRAY' || $j->{error})) {
            $st->close;
            return ('bad_chunk', substr($e->{data} // '', 0, 200));
        }
        if ($j->{error}) { $st->close; return ('bad_stream_error', json_encode($j->{error})); }
        for my $c (@{$j->{choices}}) { $finish //= $c->{finish_reason}; }
        if ($vanish_after && $n >= $vanish_after) {
            $st->close;
            return ('vanished', $n);
        }
    }
    if ($done) {
        # the chunked body must end too
        $st->fill($IO_TIMEOUT) while !$st->{done} && !$st->{eof} && $st->{sock}
                                     && time < $st->{events}[-1]{t} + $IO_TIMEOUT;
    }
    my $ended = $st->{done};
    $st->close;
    return ('vanished', $n) if $vanish_after;   # stream shorter than the vanish point
    return ('bad_truncated', "$n events, no [DONE]") unless $done;
    return ('bad_unterminated', 'no last chunk after [DONE]') unless $ended;
    return ('bad_no_finish', "$n events") unless defined $finish;
    return ('stream_ok', $finish);
}

# /execute stream. %o: vanish_after, cancel_after (cancel the job after
# that many events and check /cancel's reply and a duplicate job_id).
sub do_execute {
    my ($id, $max, %o) = @_;
    my %body = (job_id => $id, prompt => rand_prompt(), max_tokens => $max, sampling());
    # a job to cancel or abandon must still run then
    $body{ignore_eos} = JSON::PP::true if $o{cancel_after} || $o{vanish_after};
    my $st = send_req('POST', '/execute', \%body, 'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    $st->fill($IO_TIMEOUT) until $st->{head_done} || $st->{eof} || !$st->{sock};
    return ('no_response', 'no header') unless $st->{head_done};
    return classify_error_reply(read_reply($st)) unless $st->{status} == 200;
    my (@ev, $cancel_status);
    while (my $e = $st->next_event($IO_TIMEOUT)) {
        push @ev, $e;
        my $name = $e->{event} // '';
        unless (ref $e->{json} eq 'HASH') {
            $st->close;
            return ('bad_event', "$name: " . substr($e->{data} // '', 0, 200));
        }
        last if $name eq 'end' || $name eq 'error';
        if ($o{vanish_after} && @ev >= $o{vanish_after}) {
            $st->close;
            return ('vanished', scalar @ev);
        }
        if ($o{cancel_after} && @ev == $o{cancel_after}) {
            # a duplicate job_id is refused while the job runs (409), or
            # runs if the job just ended; then cancel it
            my $dup = read_reply(send_req('POST', '/execute',
                { job_id => $id, prompt => 'x', max_tokens => 1 },
                'X-Correlation-ID' => "$id-dup") // return ('connect_failed', $!));
            return ('bad_duplicate', "status $dup->{status}: " . substr($dup->{body}, 0, 200))
                unless ($dup->{status} == 409 && is_error_json($dup->{json}))
                       || $dup->{status} == 200 || $dup->{status} == 429
                       || $dup->{status} == 503;
            my $c = read_reply(send_req('POST', '/cancel', { job_id => $id },
                                        'X-Correlation-ID' => "$id-cancel")
                               // return ('connect_failed', $!));
            $cancel_status = ref $c->{json} eq 'HASH' ? $c->{json}{status} // '' : '';
            return ('bad_cancel_reply', "status $c->{status}: " . substr($c->{body}, 0, 200))
                unless $c->{status} == 200
                       && $cancel_status =~ /^(cancelling|already_cancelling|finished|not_found)$/;
        }
    }
    my $ended = $st->{done};
    $st->close;
    my $order = join ',', map { my $n = $_->{event} // '?'; $n eq 'token' ? 't' : $n } @ev;
    $order =~ s/(?:,t)+/,t*/g;
    return ('vanished', scalar @ev) if $o{vanish_after};
    return ('bad_truncated', "events $order") unless @ev && ($ev[-1]{event} // '') =~ /^(end|error)$/;
    return ('bad_unterminated', "events $order") unless $ended;
    my $last = $ev[-1];
    if ($last->{event} eq 'error') {
        return ('bad_order', $order) unless $ev[0]{event} eq 'started' || @ev == 1;
        return ('stream_error', $last->{json}{code} // '');
    }
    return ('bad_order', $order)
        unless $order =~ /^started(,t\*)?,metrics,end$/ || $order =~ /^started,end$/;
    my $sr = $last->{json}{stop_reason} // '';
    my $ntok = grep { ($_->{event} // '') eq 'token' } @ev;
    return ('bad_end', "stop_reason $sr") unless $sr =~ /^(EOS|STOP_SEQUENCE|MAX_TOKENS|CANCELLED)$/;
    return ('bad_count', "tokens_out $last->{json}{tokens_out}, $ntok token events")
        if $sr eq 'MAX_TOKENS' && ($last->{json}{tokens_out} != $max || $ntok != $max);
    if ($o{cancel_after}) {
        return ('cancelled', $cancel_status) if $sr eq 'CANCELLED';
        # 'cancelling' stops the job at its next step boundary; a cancel
        # that lands while the job's last step is in flight finds it
        # running and still sees it end normally (rare: counted below)
        return ('cancel_late', "$sr after cancel reply '$cancel_status'")
            if $cancel_status eq 'cancelling';
        return ('stream_ok', "$sr, cancel: $cancel_status");
    }
    return ('bad_end', 'CANCELLED without a cancel') if $sr eq 'CANCELLED';
    return ('stream_ok', $sr);
}

# a non-streaming request abandoned while it generates
sub do_vanish_plain {
    my ($id) = @_;
    my $st = send_req('POST', '/v1/completions',
                      { prompt => rand_prompt(), max_tokens => 1500, ignore_eos => JSON::PP::true },
                      'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    sleep 0.05 + rand 0.3;
    $st->close;
    return ('vanished', 0);
}

# Hostile bodies, each with the endpoint it goes to; every one is a 4xx
# with an error body by the README (a 429/503 is accepted too).
my $deep = '[' x 40 . ']' x 40;
my $very_deep = '[' x 20000 . ']' x 20000;
my @HOSTILE = (
    [ 'invalid json',     '*', '{"prompt":' ],
    [ 'trailing comma',   '*', '{"prompt":"x",}' ],
    [ 'not json',         '*', 'hello world' ],
    [ 'empty body',       '*', '' ],
    [ 'array body',       '*', '[]' ],
    [ 'string body',      '*', '"prompt"' ],
    [ 'number body',      '*', '42' ],
    [ 'wrong types',      '/v1/completions', '{"prompt":5,"max_tokens":"many"}' ],
    [ 'wrong types',      '/execute', '{"job_id":7,"prompt":["x"],"max_tokens":true}' ],
    [ 'wrong types',      '/v1/chat/completions', '{"messages":"hi","max_tokens":{}}' ],
    [ 'bad role',         '/v1/chat/completions', '{"messages":[{"role":"robot","content":"x"}]}' ],
    [ 'negative',         '/v1/completions', '{"prompt":"x","max_tokens":-1}' ],
    [ 'huge number',      '/v1/completions', '{"prompt":"x","max_tokens":123456789012345678901234567890}' ],
    [ 'double overflow',  '/v1/completions', '{"prompt":"x","max_tokens":16,"temperature":1e400}' ],
    [ 'NaN',              '/v1/completions', '{"prompt":"x","temperature":NaN}' ],
    [ 'Infinity',         '/execute', '{"job_id":"h","prompt":"x","temperature":Infinity}' ],
    [ 'seed > u64',       '/execute', '{"job_id":"h","prompt":"x","seed":18446744073709551616}' ],
    [ 'max_tokens > max', '/execute', '{"job_id":"h","prompt":"x","max_tokens":100000}' ],
    [ 'empty job_id',     '/execute', '{"job_id":"","prompt":"x"}' ],
    [ 'long job_id',      '/execute', '{"job_id":"' . ('j' x 200) . '","prompt":"x"}' ],
    [ 'NUL escape',       '/v1/completions', '{"prompt":"a\u0000b"}' ],
    [ 'invalid UTF-8',    '/v1/completions', qq({"prompt":"\xff\xfe\xfd"}) ],
    [ 'overlong UTF-8',   '/execute', qq({"job_id":"h","prompt":"\xc0\xaf"}) ],
    [ 'invalid UTF-8',    '/v1/chat/completions', qq({"messages":[{"role":"user","content":"\xed\xa0\x80"}]}) ],
    [ 'deep nesting',     '*', qq({"prompt":"x","extra":$deep}) ],
    [ 'very deep nesting','*', qq({"prompt":"x","extra":$very_deep}) ],
    [ 'n=65',             '/v1/completions', '{"prompt":"x","n":65}' ],
    [ '5 stops',          '/v1/completions', '{"prompt":"x","stop":["a","b","c","d","e"]}' ],
    [ 'logprobs 21',      '/v1/completions', '{"prompt":"x","logprobs":21}' ],
    [ 'token out of vocab', '/v1/completions', '{"prompt":[99999]}' ],
    [ 'unknown model',    '/v1/completions', '{"model":"nope","prompt":"x"}' ],
    [ 'prompt > context', '/v1/completions', '{"prompt":"' . ('Once upon a time ' x 700) . '","max_tokens":1}' ],
    [ 'cancel bad type',  '/cancel', '{"job_id":5}' ],
    [ 'detokenize bad',   '/detokenize', '{"tokens":[-1]}' ],
);
my @HOSTILE_TARGETS = ('/v1/completions', '/v1/chat/completions', '/execute',
                       '/tokenize', '/cancel');

sub do_hostile {
    my ($id) = @_;
    my $h = $HOSTILE[int rand @HOSTILE];
    my ($name, $path, $body) = @$h;
    $path = $HOSTILE_TARGETS[int rand @HOSTILE_TARGETS] if $path eq '*';
    my $st = send_req('POST', $path, $body, 'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    my $r = read_reply($st);
    my ($out, $d) = $r->{status} == 200
        ? ('hostile_accepted', substr($r->{body}, 0, 120))
        : classify_error_reply($r);
    return ($out, "$name -> $path: $d");
}

# a declared body over client_max_body_size: 413 in the API's error shape
# (README "Request bodies")
my $OVERSIZED = '{"prompt":"' . ('a' x ($BODY_MAX + 4096)) . '"}';

sub do_oversized {
    my ($id) = @_;
    my $path = $HOSTILE_TARGETS[int rand @HOSTILE_TARGETS];
    my $st = send_req('POST', $path, $OVERSIZED, 'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    my $r = read_reply($st);
    my ($out, $d) = $r->{status} == 413 ? classify_error_reply($r)
                                          : ('bad_status', $r->{status});
    return ($out, "$path: $d");
}

sub do_other {
    my ($id) = @_;
    my @o = ([ 'GET', '/health' ], [ 'GET', '/metrics' ], [ 'GET', '/v1/models' ],
             [ 'GET', '/ready' ],
             [ 'POST', '/tokenize', { content => rand_prompt(), with_pieces => JSON::PP::true } ],
             [ 'POST', '/detokenize', { tokens => [ 1, 403, 407, 261, 378 ] } ],
             [ 'POST', '/cancel', { job_id => "nope-$id" } ],
             [ 'GET', '/v1/completions' ], [ 'GET', '/v1/nothing' ]);
    my ($m, $p, $b) = @{$o[int rand @o]};
    my $st = send_req($m, $p, $b, 'X-Correlation-ID' => $id)
        or return ('connect_failed', $!);
    my $r = read_reply($st);
    return classify_error_reply($r) unless $r->{status} == 200;
    return ('bad_incomplete', "$p: body cut") unless $r->{complete};
    return ('text_ok', $p) if $p eq '/metrics' && $r->{body} =~ /^starling_active_requests \d+$/m;
    return ('bad_body', "$p: " . substr($r->{body}, 0, 120)) unless ref $r->{json} eq 'HASH';
    return ('bad_body', "$p: cancel of an unknown job: " . substr($r->{body}, 0, 120))
        if $p eq '/cancel' && ($r->{json}{status} // '') ne 'not_found';
    return ('json_ok', $p);
}

# kind => [ weight, sub(id) ]
my %KINDS = (
    completions        => [ 10, sub { do_openai_plain($_[0], 0, 8 + int rand 200) } ],
    completions_stream => [ 10, sub { do_openai_stream($_[0], 0, 8 + int rand 200) } ],
    chat               => [  7, sub { do_openai_plain($_[0], 1, 8 + int rand 200) } ],
    chat_stream        => [  7, sub { do_openai_stream($_[0], 1, 8 + int rand 200) } ],
    long_plain         => [  3, sub { do_openai_plain($_[0], rand() < 0.5, 1200 + int rand 800) } ],
    execute            => [ 12, sub { do_execute($_[0], 8 + int rand 300) } ],
    execute_cancel     => [  7, sub { do_execute($_[0], 1500, cancel_after => 2 + int rand 6) } ],
    vanish_stream      => [  9, sub {
        my $k = int rand 3;
        return $k == 0 ? do_execute($_[0], 1500, vanish_after => 2 + int rand 5)
                       : do_openai_stream($_[0], $k == 2, 1500, 2 + int rand 5);
    } ],
    vanish_plain       => [  2, sub { do_vanish_plain($_[0]) } ],
    hostile            => [ 15, sub { do_hostile($_[0]) } ],
    oversized          => [  2, sub { do_oversized($_[0]) } ],
    other              => [  4, sub { do_other($_[0]) } ],
);
my @KIND_NAMES = sort keys %KINDS;
my $KIND_WEIGHT = 0;
$KIND_WEIGHT += $KINDS{$_}[0] for @KIND_NAMES;

sub pick_kind {
    my $x = rand $KIND_WEIGHT;
    for my $k (@KIND_NAMES) {
        return $k if ($x -= $KINDS{$k}[0]) < 0;
    }
    return $KIND_NAMES[-1];
}

my %GOOD = map { $_ => 1 } qw(json_ok text_ok stream_ok stream_error cancelled
                              cancel_late rejected client_error vanished);

# --- run ----------------------------------------------------------------------

my $dir = "$t->{prefix}/soak";
mkdir $dir or die "mkdir $dir: $!";

# both workers ready (each loads the model itself)
{
    my $ready = 0;
    for (1 .. 400) {
        my $r = read_reply(send_req('GET', '/ready') // next);
        $ready++ if $r->{status} == 200;
        last if $ready >= 20;
        sleep 0.02;
    }
}
my $workers0 = live_workers();
is(scalar @$workers0, 2, "two workers: @$workers0");
my $kv_bytes = (read_reply(send_req('GET', '/health'))->{json} // {})->{kv_bytes} // 0;

my $t0 = time;
my $end = $t0 + $SECONDS;
my %kids;
for my $c (1 .. $CLIENTS) {
    my $pid = fork // die "fork: $!";
    if ($pid) { $kids{$pid} = $c; next; }
    # client: no Test::More, no StarlingTest destructor, no END blocks
    $t->{started} = 0;
    $SIG{PIPE} = 'IGNORE';
    srand($SEED * 1000 + $c);
    open my $out, '>', "$dir/client-$c.log" or _exit(2);
    select((select($out), $| = 1)[0]);
    my $n = 0;
    while (time < $end) {
        my $kind = pick_kind();
        my $id = sprintf 'soak-%d-%d-%d', $SEED, $c, ++$n;
        my $t1 = time;
        my ($outcome, $detail) = eval { $KINDS{$kind}[1]->($id) };
        ($outcome, $detail) = ('died', $@) unless defined $outcome;
        $detail //= '';
        $detail =~ s/[\t\n\r]/ /g;
        printf $out "%s\t%s\t%s\t%.3f\t%.3f\t%s\n", $kind, $outcome, $id, $t1 - $t0, time - $t1,
               substr($detail, 0, 300);
    }
    close $out;
    _exit(0);
}

# the master: two reloads; worker RSS samples
my (@reloads, %rss);
my $sample_at = $t0 + ($SECONDS < 15 ? $SECONDS / 3 : 5);
sleep($sample_at - time) if $sample_at > time;
$rss{first} = rss_of($workers0);
for my $at (1 / 3, 2 / 3) {
    my $when = $t0 + $SECONDS * $at;
    sleep($when - time) if $when > time;
    my $before = join ' ', @{live_workers()};
    kill 'HUP', $master;
    my $deadline = time + 15;
    my $after;
    do {
        sleep 0.1;
        $after = live_workers();
    } while (time < $deadline && (@$after != 2 || grep { $before =~ /\b$_\b/ } @$after));
    push @reloads, { at => time - $t0, before => $before, after => "@$after" };
}
my $workers_last = live_workers();
{
    my $when = time + ($SECONDS < 15 ? 1 : 5);
    sleep($when - time) if $when < $end;
    $rss{last_early} = rss_of($workers_last);
}

# clients stop by themselves at $end; a hard limit behind that
my $hard = $end + 4 * $IO_TIMEOUT + 30;
while (%kids && time < $hard) {
    my $pid = waitpid(-1, WNOHANG);
    if ($pid > 0) { delete $kids{$pid}; next; }
    sleep 0.2;
}
my @stuck = sort { $a <=> $b } values %kids;
for my $pid (keys %kids) { kill 'KILL', $pid; waitpid($pid, 0); }
my $duration = time - $t0;
ok(!@stuck, sprintf('all %d clients stopped by themselves (%.1f s)', $CLIENTS, $duration))
    or diag("clients still running at the hard limit: @stuck");

# --- outcomes -----------------------------------------------------------------

my (%by, %bad, $total);
for my $c (1 .. $CLIENTS) {
    open my $fh, '<', "$dir/client-$c.log" or next;
    while (<$fh>) {
        chomp;
        my ($kind, $outcome, $id, $at, $el, $detail) = split /\t/, $_, 6;
        $total++;
        $by{$kind}{$outcome}++;
        push @{$bad{$kind}}, "$id at ${at}s took ${el}s: $outcome: $detail" unless $GOOD{$outcome};
    }
}
note(sprintf 'soak: %d requests by %d clients in %.1f s (seed %d)', $total // 0,
     $CLIENTS, $duration, $SEED);
for my $k (@KIND_NAMES) {
    note(sprintf '  %-18s %s', $k,
         join ', ', map { "$_ $by{$k}{$_}" } sort keys %{$by{$k} // {}});
}
for my $k (@KIND_NAMES) {
    my $n = 0;
    $n += $_ for values %{$by{$k} // {}};
    my @b = @{$bad{$k} // []};
    ok($n > 0 && !@b, "$k: $n requests, every outcome well-formed")
        or diag(join "\n", "$k: " . scalar(@b) . " bad", @b[0 .. ($#b > 9 ? 9 : $#b)]);
}
ok(($by{execute_cancel}{cancelled} // 0) > 0, 'some running jobs were cancelled');
ok(($by{execute_cancel}{cancel_late} // 0) * 10 <= ($by{execute_cancel}{cancelled} // 0),
   'a "cancelling" job ended normally at most once per 10 cancelled '
   . '(only a cancel during its last step may)');
ok(($by{vanish_stream}{vanished} // 0) > 0, 'some clients vanished mid-stream');
is(scalar(grep { my $r = $_; !grep { $r->{before} =~ /\b$_\b/ } split ' ', $r->{after} } @reloads),
   2, 'two reloads, each replaced both workers')
    or diag(join "\n", map { sprintf 'reload at %.1fs: workers %s -> %s', $_->{at},
                                 $_->{before}, $_->{after} } @reloads);
note(sprintf 'reload at %.1f s: workers %s -> %s', $_->{at}, $_->{before}, $_->{after})
    for @reloads;

# the access log sees every request, including the vanished ones
my (%status, @s500, @gen503);
if (open my $fh, '<', "$t->{prefix}/logs/soak.log") {
    while (<$fh>) {
        my ($st, $id, $m, $uri, $pid, $ct, $fr, $rt) =
            /^(\d+) (\S+) (\S+) (\S+) pid=(\d+) t=\S+ ct=(\S*) fr=(\S*) rt=(\S+)/ or next;
        $status{$st}++;
        push @s500, $_ if $st >= 500 && $st != 503;
        # a 503 queue_timeout for a request that had tokens already
        push @gen503, "$id $uri worker $pid completion_tokens=$ct request_time=$rt"
            if $st == 503 && $ct =~ /^[1-9]/;
    }
}
note('access log statuses: ' . join ', ', map { "$_ x$status{$_}" } sort keys %status);
ok(!@s500, 'no 5xx other than 503 in the access log')
    or diag(join '', @s500[0 .. ($#s500 > 9 ? 9 : $#s500)]);
ok(!@gen503, 'no request answered 503 (queue timeout) after it had generated tokens')
    or diag(scalar(@gen503) . " such requests, e.g.\n"
            . join "\n", @gen503[0 .. ($#gen503 > 4 ? 4 : $#gen503)]);

# --- idle at the end ----------------------------------------------------------

# /health is per worker: poll until 20 answers in a row are idle
sub settle_health {
    my $deadline = time + 20;
    my ($h, $streak) = (undef, 0);
    while (time < $deadline && $streak < 20) {
        $h = read_reply(send_req('GET', '/health') // next)->{json} // {};
        my $idle = ($h->{active_sequences} // 1) == 0 && ($h->{queued_sequences} // 1) == 0
                   && ($h->{live_requests} // 1) == 0
                   && ($h->{kv_blocks_free} // -1) == ($h->{kv_blocks_total} // -2);
        $streak = $idle ? $streak + 1 : 0;
        sleep($idle ? 0.01 : 0.1);
    }
    return ($h, $streak >= 20);
}

sub active_gauge {
    my $deadline = time + 10;
    my $v;
    while (time < $deadline) {
        my $r = read_reply(send_req('GET', '/metrics') // next);
        ($v) = $r->{body} =~ /^starling_active_requests (-?\d+)$/m;
        last if defined $v && $v == 0;
        sleep 0.2;
    }
    return $v;
}

my ($h, $idle) = settle_health();
ok($idle, 'every worker idle: 0 active, 0 queued, 0 live')
    or diag('last /health: ' . json_encode($h));
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, "KV pool full ($h->{kv_blocks_total} blocks free)");
my $active = active_gauge();
is($active, 0, 'starling_active_requests 0 after the soak')
    or diag(sprintf '%d requests failed a write to a gone client (writev()/write() failed in '
                    . 'error.log), %d closes seen by a read',
            scalar(() = $t->error_log =~ /\b(?:writev|write|send)\(\) failed/g),
            scalar(() = $t->error_log =~ /prematurely closed|recv\(\) failed/g));

# old workers drain and exit after the reloads
{
    my $deadline = time + 20;
    my $c;
    do { $c = nginx_children(); sleep 0.2 if grep { /shutting down/ } values %$c; }
        while (time < $deadline && grep { /shutting down/ } values %$c);
    my @left = grep { $c->{$_} =~ /shutting down/ } keys %$c;
    ok(!@left, 'old workers exited after the reloads') or diag("still shutting down: @left");
}

# --- RSS ----------------------------------------------------------------------

# The bound: a worker's KV pool (kv_bytes in /health, 10 MiB here) is
# memory the engine may touch for the first time at any point of a run,
# so its pages may legitimately join RSS late; 8 MiB more covers malloc
# arena growth and nginx's connection and pool caches. Measured on this
# machine: +3..4 MiB over the last third, +0.1 MiB first vs last workers.
# What it catches: a leak of about 18 MiB / (requests per worker in the
# last third), i.e. ~60 KiB per request at 60 s, ~12 KiB at 300 s.
my $bound_kb = int($kv_bytes / 1024) + 8 * 1024;
$rss{end} = rss_of($workers_last);
my $fmt = sub { my $r = shift; join ', ', map { "$_: $r->{$_} kB" } sort keys %$r };
note("worker VmRSS, first workers 5 s in: " . $fmt->($rss{first}));
note("worker VmRSS, last workers 5 s after the 2nd reload: " . $fmt->($rss{last_early}));
note("worker VmRSS, last workers at the end: " . $fmt->($rss{end}));
note('worker VmHWM at the end: ' . join ', ', map { "$_: " . (vmrss_kb($_, 'VmHWM') // '?') . ' kB' }
                                              @$workers_last);
{
    my ($max0) = sort { $b <=> $a } values %{$rss{first}};
    my ($max1) = sort { $b <=> $a } values %{$rss{end}};
    ok($max1 - $max0 <= $bound_kb,
       sprintf 'largest worker RSS %d kB -> %d kB (first vs last workers), growth within %d kB',
               $max0, $max1, $bound_kb);
    my @grew = map { $rss{end}{$_} - ($rss{last_early}{$_} // 0) } @$workers_last;
    ok(!grep({ $_ > $bound_kb } @grew),
       "same workers over the last third: growth @grew kB, within $bound_kb kB");
}

# --- 503 while generating: a lone non-streaming request on /nsprobe/ ----------

# /nsprobe/ has a 100 ms queue timeout; a 2000-token request alone on an
# idle server gets its first token in the first step (not queued), but
# takes longer than 100 ms to finish.
{
    my (@st, @el);
    for my $i (1 .. 3) {
        my $t1 = time;
        my $r = read_reply(send_req('POST', '/nsprobe/v1/completions',
            { prompt => 'Once upon a time', max_tokens => 2000, ignore_eos => JSON::PP::true,
              temperature => 0 }, 'X-Correlation-ID' => "nsprobe-$i"));
        push @st, $r->{status} . ($r->{status} == 503 ? " ($r->{json}{error}{code})" : '');
        push @el, sprintf '%.2fs', time - $t1;
    }
    ok(!grep({ /^503/ } @st), 'a lone long non-streaming request is not a queue timeout')
        or diag("statuses @st after @el (queue timeout 100 ms, nothing queued)");
    is(active_gauge(), 0, 'starling_active_requests 0 after the probe');
}

$t->stop;
$t->check_error_log;
{
    my %lv;
    my $log = $t->error_log;
    $lv{$1}++ while $log =~ /^\S+ \S+ \[(\w+)\]/mg;
    note('error.log levels: ' . join ', ', map { "$_ x$lv{$_}" } sort keys %lv);
}
done_testing();
