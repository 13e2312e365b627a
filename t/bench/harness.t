#!/usr/bin/perl
# The llama.cpp comparison scripts (tools/bench-compare.pl,
# tools/bench-server.pl) explain a missing llama.cpp build, a missing
# model file and a failed run, and exit non-zero. No llama.cpp is needed:
# the failed-run cases use a stand-in llama-bench / llama-server that
# fails the way a broken build does (prints an error, exits non-zero).
#
#   prove t/bench/harness.t     (after make -j2 tools)

use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $root = $ENV{ST_ROOT} // '.';
chdir $root or die "chdir $root: $!";
for my $t (qw(starling-bench starling-membw starling-loadbench)) {
    plan skip_all => "build/$t not built (make -j2 tools)" unless -x "build/$t";
}

my $tmp = tempdir('bench-harness-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bad = "$tmp/not-a-model.gguf";
open my $fh, '>', $bad or die "$bad: $!";
print $fh "this is not a GGUF file\n";
close $fh;

# a llama.cpp bin folder whose programs fail at once
my $broken = "$tmp/broken-bin";
mkdir $broken or die "$broken: $!";
for my $p (qw(llama-bench llama-server)) {
    open my $s, '>', "$broken/$p" or die "$broken/$p: $!";
    print $s "#!/bin/sh\necho \"$p: error: failed to load model\" >&2\n"
           . "exit 3\n";
    close $s;
    chmod 0755, "$broken/$p" or die "chmod: $!";
}

# Runs a script with the given environment; returns (exit status, output).
sub run {
    my ($env, @cmd) = @_;
    my $q = join ' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" } @cmd;
    local %ENV = %ENV;
    delete $ENV{LLAMACPP_BIN};
    @ENV{ keys %$env } = values %$env;
    my $out = `$q 2>&1`;
    return ($? >> 8, $out);
}

my @cmp = ('tools/bench-compare.pl', '--membw-mib', 16);
my ($rc, $out);

($rc, $out) = run({}, @cmp, '--files', $bad);
is($rc, 2, 'compare: no LLAMACPP_BIN exits 2');
like($out, qr/no llama\.cpp build given.*LLAMACPP_BIN=/s,
     'compare: says how to pass a llama.cpp build');

($rc, $out) = run({ LLAMACPP_BIN => "$tmp/nowhere" }, @cmp, '--files', $bad);
is($rc, 2, 'compare: a folder without llama-bench exits 2');
like($out, qr{\Q$tmp\E/nowhere/llama-bench: not found},
     'compare: names the missing llama-bench');

($rc, $out) = run({ LLAMACPP_BIN => $broken }, @cmp,
                  '--files', "$tmp/missing.gguf");
is($rc, 2, 'compare: a missing model file exits 2');
like($out, qr{\Q$tmp\E/missing\.gguf: model file not found},
     'compare: names the missing file');

($rc, $out) = run({ LLAMACPP_BIN => $broken }, @cmp, '--files', $bad,
                  '--threads', 1, '--quick');
is($rc, 1, 'compare: failed runs exit 1');
like($out, qr/starling-bench failed on \Q$bad\E with 1 thread\(s\): exit status 1/,
     'compare: starling-bench failure reported');
like($out, qr/not a GGUF/, "compare: starling-bench's own message shown");
like($out, qr/llama-bench failed on \Q$bad\E with 1 thread\(s\): exit status 3/,
     'compare: llama-bench failure reported');
like($out, qr/\| not-a-model \| \? \| 1 \| pp512 \| failed \| failed \|/,
     'compare: the table marks the failed cells');

my @srv = ('tools/bench-server.pl', '--module', $bad, '--quick',
           '--start-timeout', 20);

($rc, $out) = run({}, @srv, '--file', $bad);
is($rc, 2, 'server: no LLAMACPP_BIN exits 2');
like($out, qr/no llama\.cpp build given/, 'server: says so');

($rc, $out) = run({ LLAMACPP_BIN => $broken }, @srv,
                  '--file', "$tmp/missing.gguf");
is($rc, 2, 'server: a missing model file exits 2');
like($out, qr{\Q$tmp\E/missing\.gguf: model file not found},
     'server: names the missing file');

# nginx cannot load a module that is not one; the stand-in llama-server
# exits: both servers fail to start, each with its log's end
SKIP: {
    skip 'no nginx binary', 3 unless -x ($ENV{NGINX_BIN} || '/usr/sbin/nginx');
    ($rc, $out) = run({ LLAMACPP_BIN => $broken }, @srv, '--file', $bad);
    is($rc, 1, 'server: servers that do not start exit 1');
    like($out, qr/starling did not become ready.*emerg/s,
         "server: Starling's failure and nginx's log shown");
    like($out, qr/llama did not become ready.*llama-server: error/s,
         "server: llama-server's failure and its log shown");
}

done_testing();
