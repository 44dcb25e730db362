/* libFuzzer target: every request and reply body of every service, as a
 * handler receives it after the envelope. The first byte picks the message
 * type; the rest is decoded, re-encoded (which must give the size it
 * announced) and decoded again.
 * fuzz-sources: */
#include "bitbucket.pb-c.h"
#include "broker.pb-c.h"
#include "envelope.pb-c.h"
#include "registry.pb-c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const ProtobufCMessageDescriptor *const s_types[] = {
    &portico__request__descriptor,
    &portico__reply__descriptor,
    &portico__ping_reply__descriptor,
    &portico__registry__create_integration_request__descriptor,
    &portico__registry__get_integration_request__descriptor,
    &portico__registry__get_integration_reply__descriptor,
    &portico__registry__list_integrations_reply__descriptor,
    &portico__registry__update_integration_request__descriptor,
    &portico__registry__login_request__descriptor,
    &portico__registry__login_reply__descriptor,
    &portico__registry__create_session_request__descriptor,
    &portico__registry__lookup_session_request__descriptor,
    &portico__registry__lookup_session_reply__descriptor,
    &portico__registry__create_pending_request__descriptor,
    &portico__registry__consume_pending_request__descriptor,
    &portico__registry__consume_pending_reply__descriptor,
    &portico__registry__store_tokens_request__descriptor,
    &portico__registry__lease_tokens_reply__descriptor,
    &portico__registry__replace_tokens_request__descriptor,
    &portico__registry__list_audit_reply__descriptor,
    &portico__registry__list_users_reply__descriptor,
    &portico__broker__start_login_request__descriptor,
    &portico__broker__finish_login_request__descriptor,
    &portico__broker__repositories_reply__descriptor,
    &portico__broker__check_integration_request__descriptor,
    &portico__bitbucket__token_request__descriptor,
    &portico__bitbucket__who_am_irequest__descriptor,
    &portico__bitbucket__list_repos_request__descriptor,
    &portico__bitbucket__list_repos_reply__descriptor,
    &portico__bitbucket__oauth1_access_token_request__descriptor,
    &portico__registry__set_access_request__descriptor,
    &portico__registry__access_rules__descriptor,
    &portico__registry__due_access_reply__descriptor,
    &portico__registry__access_result_request__descriptor,
    &portico__registry__list_access_ended_reply__descriptor,
    &portico__bitbucket__readable_request__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = s_types[data[0] % (sizeof s_types / sizeof s_types[0])];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (protobuf_c_message_pack(m, buf) != n)
        abort();
    /* protobuf-c keeps unknown fields, even field number 0 (also inside
     * nested messages), and then refuses to read its own encoding of them
     * back; Portico never re-encodes a message it received, so the second
     * decode is exercised for memory safety only. */
    ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, n, buf);
    free(buf);
    if (again)
        protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
