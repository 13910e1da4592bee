/* librdkafka properties from a file and from flags: parsing, @FILE values,
 * secrets kept out of descriptions and errors, Holdfast's own properties
 * refused, librdkafka's verdict on names and values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "holdfast/buf.h"
#include "holdfast/kafka_props.h"

static char dir[] = "/tmp/holdfast-test-kprops.XXXXXX";

static char *write_file(const char *name, const char *text)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static hf_err_t apply(const char *file, const char *list, char *err, size_t err_size,
                      rd_kafka_conf_t **out)
{
    hf_kafka_props_config_t cfg = {(char *)file, (char *)list};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    hf_err_t rc = hf_kafka_props_apply(&cfg, conf, err, err_size);
    if (out)
        *out = conf;
    else
        rd_kafka_conf_destroy(conf);
    return rc;
}

static const char *conf_get(rd_kafka_conf_t *conf, const char *name)
{
    static char value[512];
    size_t size = sizeof value;
    return rd_kafka_conf_get(conf, name, value, &size) == RD_KAFKA_CONF_OK ? value : "(unset)";
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    char err[512];

    /* File first, then the flags in order; comments, blanks, spaces around '='. */
    const char *pw = write_file("password", "s3cret-from-file\n");
    char text[512];
    snprintf(text, sizeof text,
             "# a comment\n\n  security.protocol = sasl_ssl\nsasl.mechanism=SCRAM-SHA-512\r\n"
             "sasl.username=relay\nsasl.password=@%s\nclient.id=from-file\n",
             pw);
    const char *file = write_file("client.properties", text);
    hf_kafka_props_config_t cfg = {(char *)file,
                                   "client.id=from-flag\nsocket.keepalive.enable=true"};
    hf_kafka_props_t *props = hf_kafka_props_load(&cfg, err, sizeof err);
    CHECK(props != NULL);
    if (props) {
        CHECK_INT_EQ(hf_kafka_props_count(props), 7);
        CHECK_STR_EQ(hf_kafka_props_name(props, 0), "security.protocol");
        CHECK_STR_EQ(hf_kafka_props_value(props, 0), "sasl_ssl");
        CHECK_STR_EQ(hf_kafka_props_value(props, 1), "SCRAM-SHA-512");    /* \r dropped */
        CHECK_STR_EQ(hf_kafka_props_value(props, 3), "s3cret-from-file"); /* @FILE, no newline */
        hf_buf_t d = HF_BUF_INIT;
        hf_kafka_props_describe(props, &d);
        CHECK(strstr(d.data, "sasl.password=[redacted]") != NULL);
        CHECK(strstr(d.data, "s3cret") == NULL);
        CHECK(strstr(d.data, "sasl.username=relay") != NULL);
        hf_buf_free(&d);
        hf_kafka_props_free(props);
    }
    rd_kafka_conf_t *conf = NULL;
    CHECK(apply(file, "client.id=from-flag", err, sizeof err, &conf) == HF_OK);
    CHECK_STR_EQ(conf_get(conf, "client.id"), "from-flag"); /* the later wins */
    CHECK_STR_EQ(conf_get(conf, "sasl.password"), "s3cret-from-file");
    rd_kafka_conf_destroy(conf);

    /* "@@" is a literal '@'. */
    CHECK(apply(NULL, "sasl.password=@@literal", err, sizeof err, &conf) == HF_OK);
    CHECK_STR_EQ(conf_get(conf, "sasl.password"), "@literal");
    rd_kafka_conf_destroy(conf);

    /* No settings at all: nothing to do. */
    CHECK(apply(NULL, NULL, err, sizeof err, NULL) == HF_OK);

    /* librdkafka's own message for what it refuses. */
    CHECK(apply(NULL, "no.such.property=1", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "No such configuration property") != NULL);
    CHECK(strstr(err, "no.such.property") != NULL);
    CHECK(apply(NULL, "security.protocol=carrier_pigeon", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "security.protocol") != NULL);

    /* A secret value never appears in an error. */
    CHECK(apply(NULL, "ssl.key.password=hunter2hunter2\nsecurity.protocol=nope", err, sizeof err,
                NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(apply(NULL, "sasl.password:hunter2hunter2", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "expected key=value") != NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK(strstr(err, "#1") != NULL);
    CHECK(hf_kafka_props_is_secret("sasl.password"));
    CHECK(hf_kafka_props_is_secret("ssl.keystore.password"));
    CHECK(hf_kafka_props_is_secret("sasl.oauthbearer.client.secret"));
    CHECK(hf_kafka_props_is_secret("ssl.key.pem"));
    CHECK(!hf_kafka_props_is_secret("sasl.username"));

    /* Holdfast's own properties are refused, with the reason. */
    CHECK(apply(NULL, "enable.idempotence=false", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "set by Holdfast itself") != NULL);
    CHECK(apply(NULL, "bootstrap.servers=elsewhere:9092", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "--kafka-brokers") != NULL);
    const char *bad = write_file("bad.properties", "client.id=x\nacks=1\n");
    CHECK(apply(bad, NULL, err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "line 2") != NULL);

    /* Files that cannot be read. */
    CHECK(apply("/nonexistent/holdfast.properties", NULL, err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "/nonexistent/holdfast.properties") != NULL);
    CHECK(apply(NULL, "sasl.password=@/nonexistent/pw", err, sizeof err, NULL) == HF_ERR_INVALID);
    CHECK(strstr(err, "/nonexistent/pw") != NULL);

    unlink(pw);
    unlink(file);
    unlink(bad);
    rmdir(dir);
    CHECK_MAIN_END();
}
