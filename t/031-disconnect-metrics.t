#!/usr/bin/perl
# Every way a request ends is counted exactly once: clients that vanish
# before or while their stream is written (FIN after the header, FIN after
# a few events, RST while reading, RST with a large unread backlog), a
# non-streaming client that leaves, a client that leaves while queued,
# /cancel, the queue timeout, the request timeout, an engine error, a
# worker that is terminated mid-stream. Afterwards /metrics says
# starling_active_requests 0 and the outcomes sum to requests_total.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use Socket qw(SOL_SOCKET SO_LINGER SO_RCVBUF AF_INET SOCK_STREAM
              inet_aton pack_sockaddr_in);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} max_seqs=4;
    starling_model one path={{MODEL260K}} max_seqs=1;
    starling_model small path={{MODEL260K}} kv=64k;
    log_format fin '$status finish=$starling_finish_reason';
    access_log {{PREFIX}}/logs/finish.log fin;
EOF2
        location /one/ { starling worker model=one;
                         starling_queue 4 timeout=300ms; }
        location /small/ { starling worker model=small; }
        location /rt/ { starling worker; starling_request_timeout 200ms; }
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

my $n = 0;
my $sent = 0;           # generation requests sent (each ends one way)
my $long = { prompt => 'Once upon a time', max_tokens => 1900,
             temperature => 0, ignore_eos => JSON::PP::true };
sub job { $sent++; return { %$long, job_id => 'j' . ++$n, @_ }; }

sub rst_close {
    my ($sock) = @_;
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $sock;
}

# a client socket with a tiny receive window, set before connecting
sub small_window_request {
    my ($path, $body) = @_;
    socket(my $s, AF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', 1024));
    connect($s, pack_sockaddr_in($t->{port}, inet_aton('127.0.0.1')))
        or die "connect: $!";
    my $req = $t->build_request('POST', $path, $body);
    syswrite($s, $req) == length($req) or die "write: $!";
    return $s;
}

my $completed = 0;

for my $round (1 .. 8) {
    # FIN right after the header (the started event)
    my $s = $t->stream_open('/execute', job());
    $s->next_event(10);
    $s->close;

    # FIN after a few events
    $s = $t->stream_open('/execute', job());
    $s->next_event(10) for 1 .. 5;
    $s->close;

    # RST while reading, the server writing as fast as it can
    $sent++;
    $s = $t->stream_open('/v1/completions', { %$long, stream => JSON::PP::true });
    $s->next_event(10) for 1 .. (3 + $round * 7);
    rst_close($s->{sock});
    $s->{sock} = undef;

    # RST with a large backlog the client never read
    my $raw = small_window_request('/execute', job());
    sleep 0.05 * $round;
    rst_close($raw);
}

# a non-streaming client that leaves
for (1 .. 3) {
    $sent++;
    my $raw = small_window_request('/v1/completions', $long);
    sleep 0.02;
    close $raw;
}

# one slot: a client that leaves while queued, a queue timeout, /cancel
my $holder = $t->stream_open('/one/execute', job());
my $e = $holder->next_event(10);
is($e->{event}, 'started', 'slot holder runs');
my $q = $t->stream_open('/one/execute', job(max_tokens => 4));
sleep 0.05;
$q->close;
my $r = $t->request('POST', '/one/execute', job(max_tokens => 4));
is($r->{status}, 503, 'queue timeout 503');
$r = $t->request('POST', '/cancel', { job_id => 'j' . ($n - 2) });
is($r->{json}{status}, 'cancelling', 'slot holder cancelled');
my @ev;
while (my $x = $holder->next_event(10)) { push @ev, $x; }
$holder->close;
is($ev[-1]{json}{stop_reason}, 'CANCELLED', '... CANCELLED');

# request timeout, engine error (a KV cache too small for the prompt),
# success
my ($st, $h, $evs) = $t->stream('/rt/execute', job());
is($evs->[-1]{json}{stop_reason}, 'TIMEOUT', 'request timeout ends the stream');
($st, $h, $evs) = $t->stream('/small/execute',
    job(prompt => 'Once upon a time ' x 40, max_tokens => 4));
ok((grep { ($_->{event} // '') eq 'error' } @$evs) || $st >= 500,
   'engine error (KV too small) reported') or diag("status $st");
($st, $h, $evs) = $t->stream('/execute', job(max_tokens => 4));
is($evs->[-1]{json}{stop_reason}, 'MAX_TOKENS', 'a request that succeeds');

sub settled {
    my ($what) = @_;
    my ($m, $active);
    my $deadline = time + 15;
    while (time < $deadline) {
        $m = $t->request('GET', '/metrics')->{body} // '';
        ($active) = $m =~ /^starling_active_requests (-?\d+)$/m;
        last if defined $active && $active == 0;
        sleep 0.1;
    }
    is($active, 0, "$what: starling_active_requests 0");
    my %o = $m =~ /^starling_requests_total\{outcome="(\w+)"\} (\d+)$/mg;
    my $sum = 0;
    $sum += $_ for values %o;
    # requests_total = the outcomes + the active ones; with none active
    # every request sent must be in exactly one outcome
    is($sum, $sent, "$what: outcomes sum to the requests sent ($sent)")
        or diag(join ', ', map { "$_=$o{$_}" } sort keys %o);
    return (\%o, $m);
}

my ($o) = settled('after the disconnects');
cmp_ok($o->{cancelled} // 0, '>=', 8 * 4 + 3 + 2,
       'every vanished client and the cancel counted as cancelled');

# the access log says why: a client that went away is "cancelled" (it is
# logged before the engine retires the sequence)
{
    open my $fh, '<', "$t->{prefix}/logs/finish.log" or die "finish.log: $!";
    my @gone = grep { /^499 / } <$fh>;
    chomp @gone;
    my @bad = grep { !/ finish=cancelled$/ } @gone;
    cmp_ok(scalar @gone, '>=', 8 * 4, 'vanished clients logged 499');
    is(scalar @bad, 0, 'every 499 logs $starling_finish_reason cancelled')
        or diag(join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
}

# a worker terminated mid-stream (its pool cleanups never run)
my $master = $t->pid;
my $s = $t->stream_open('/execute', job());
$s->next_event(10) for 1 .. 3;
# the master's children from /proc (no ps: under the ASan run the test's
# environment preloads the sanitizer runtime, and ps hangs with it)
my @workers;
opendir my $proc, '/proc' or die "/proc: $!";
for my $pid (grep { /^\d+$/ } readdir $proc) {
    open my $fh, '<', "/proc/$pid/stat" or next;
    my $stat = <$fh> // '';
    push @workers, $pid if $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $master;
}
closedir $proc;
is(scalar @workers, 1, 'one worker');
kill 'TERM', $workers[0];
1 while $s->next_event(5);
$s->close;
my $deadline = time + 20;
my $ready;
while (time < $deadline) {
    $ready = $t->request('GET', '/ready');
    last if $ready && $ready->{status} == 200;
    sleep 0.1;
}
is($ready->{status}, 200, 'a new worker is up');
settled('after a worker was terminated');

$t->stop;
$t->check_error_log;

done_testing();
